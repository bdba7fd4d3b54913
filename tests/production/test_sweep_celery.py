"""A backtest sweep of eight variants on two Celery workers (production mode), and its
comparison report rendered in headless Chromium (issue 16).

A production-mode cluster (:func:`tests.production.cluster.production_cluster`: PostgreSQL
metadata DB, CeleryExecutor on Redis) serving only ``backtest_sweep``; two workers, each
consuming its own queue. A test-only cluster policy (``task_instance_mutation_hook``) puts
the mapped ``backtest`` instances on the workers' queues by the parity of their map index,
so both workers run variants whatever Celery's prefetching would do; the other tasks go to
the first queue. The run's conf is what ``alphafactory backtest sweep --grid`` sends. The
lake is a small simulated market in ``tmp_path`` (both workers are on this machine).

Checks: the run succeeds, eight ``backtest`` instances ran, on both workers, eight runs
are in the lake, and the comparison report ranks the eight variants and looks like a page
(not blank) in headless Chromium, its ranking table in the DOM after the page's script ran.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipelines.backtest.sweep import DAG_ID, load_grid, report_uri
from pipelines.config import get_settings
from pipelines.lake import Lake
from pipelines.orchestration.airflow_env import REPO_ROOT
from pipelines.timeline import ALL_DATES, LATEST
from tests.backtest.sweep_helpers import MARKET, write_grid
from tests.production.cluster import WorkerSpec, production_cluster
from tests.production.services import fresh_database, redis_queues, require_postgres_and_redis

pytestmark = pytest.mark.integration

WORKERS = ("worker-a", "worker-b")
REDIS_DB = 12  # the other production tests use DBs 0 and 11
RUN_TIMEOUT = 420.0

_LOCAL_SETTINGS = '''"""Test-only cluster policy of tests/production/test_sweep_celery.py."""

QUEUES = {queues!r}


def task_instance_mutation_hook(task_instance, dag_run=None):
    """The sweep's mapped backtests alternate between the workers' queues."""
    if task_instance.dag_id != {dag_id!r}:
        return
    index = task_instance.map_index
    if task_instance.task_id == "backtest" and index is not None and index >= 0:
        task_instance.queue = QUEUES[index % len(QUEUES)]
    else:
        task_instance.queue = QUEUES[0]
'''


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _check_in_chromium(page: Path, tmp_path: Path, variant_ids: list[str]) -> None:
    chromium = _chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (.ci/system-deps.sh installs it as root)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    shot = tmp_path / "sweep.png"
    proc = subprocess.run(
        [chromium, *flags, "--window-size=1400,1800", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shot.is_file(), proc.stderr[-2000:]
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 10 and len(np.unique(pixels)) > 20, "screenshot is blank"
    assert 0.005 < (pixels < 128).mean() < 0.6
    dom = subprocess.run(
        [chromium, *flags, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    ).stdout
    assert 'class="sortable"' in dom and "Deflated Sharpe" in dom, dom[-2000:]
    assert all(v in dom for v in variant_ids)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.xdist_group("production_cluster")  # never two clusters at once (Makefile)
def test_sweep_of_eight_variants_on_two_celery_workers(tmp_path: Path) -> None:
    require_postgres_and_redis()
    from pipelines.testing.lakes import simulated_lake

    started = time.perf_counter()
    lake_root = get_settings().lake_root  # tmp_path/lake (the autouse settings fixture)
    lake = simulated_lake(lake_root, **MARKET)
    sweep = load_grid(write_grid(tmp_path))
    assert len(sweep.variants) == 8
    with (
        fresh_database("airflow_sweep") as db_url,
        redis_queues(REDIS_DB, count=len(WORKERS)) as (broker_url, queues),
    ):
        queue_of = dict(zip(WORKERS, queues, strict=True))
        specs = [WorkerSpec(name, queue=queue_of[name]) for name in WORKERS]
        extra_env = {
            "ALPHAFACTORY_LAKE_ROOT": lake_root,
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
            ),
        }
        with production_cluster(
            tmp_path,
            postgres_db=db_url,
            redis_queue=(broker_url, queues[0]),
            dag_ids=[DAG_ID],
            workers=specs,
            extra_env=extra_env,
            local_settings=_LOCAL_SETTINGS.format(queues=list(queues), dag_id=DAG_ID),
        ) as cluster:
            api = cluster.api
            cluster.api.json("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
            run = api.json(
                "POST",
                f"/dags/{DAG_ID}/dagRuns",
                json={"logical_date": None, "conf": sweep.to_conf()},
            )
            run_id = run["dag_run_id"]

            def finished() -> dict[str, Any] | None:
                state = api.json("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")
                return state if state["state"] in ("success", "failed") else None

            final = cluster.wait(f"run {run_id}", finished, timeout=RUN_TIMEOUT, interval=2)
            cluster.lap("sweep run")
            instances = api.json(
                "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", params={"limit": 100}
            )["task_instances"]
            logs = cluster.logs()
    wall = time.perf_counter() - started
    summary = [(ti["task_id"], ti["map_index"], ti["state"], ti["hostname"]) for ti in instances]
    assert final["state"] == "success", f"{summary}\n{logs}"
    backtests = [ti for ti in instances if ti["task_id"] == "backtest"]
    assert len(backtests) == 8 and {ti["state"] for ti in backtests} == {"success"}, summary
    hosts = {ti["hostname"] for ti in backtests}
    print(
        f"sweep on Celery: {wall:.1f}s in all; backtests per worker:",
        {h: sum(ti["hostname"] == h for ti in backtests) for h in hosts},
    )
    assert hosts == set(WORKERS), summary

    runs = Lake(lake_root).as_of("backtest_runs", known_at=LATEST, valid_at=ALL_DATES)
    assert runs.num_rows == 8
    page = Path(report_uri(lake, sweep))
    text = page.read_text()
    variant_ids = [v.variant_id for v in sweep.variants]
    assert all(v in text for v in variant_ids)
    ranking = json.loads(
        (page.parent.parent / "sweeps" / sweep.sweep_id / "comparison.json").read_text()
    )
    assert [r["rank"] for r in ranking["ranking"]] == list(range(1, 9))
    _check_in_chromium(page, tmp_path, variant_ids)
