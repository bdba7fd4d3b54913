"""``portfolio_rebalance`` on two Celery workers that share no disk, the lake on S3.

A production-mode cluster (:func:`tests.production.cluster.production_cluster`: PostgreSQL
metadata DB, CeleryExecutor on Redis, scheduler, DAG processor, API server) with two
workers started as two machines would be: each with its own empty working directory, its
own Airflow home (task logs included) and its own name (``ALPHAFACTORY_WORKER_NAME``, the
host name Airflow records). What they share is what every machine of a deployment reads:
the DAG files, the Airflow configuration (environment) and the daily config file. The lake
is ``s3://…`` on moto's S3-compatible server on loopback, seeded with a small simulated
market (60 securities, January to mid-June 2024; the builtin scorer gives the scores).

Which worker runs what is decided, not left to Celery: a test-only cluster policy
(``airflow_local_settings.py``'s ``task_policy``) puts the DAG's tasks, in dependency
order, alternately on each worker's own queue, so consecutive stages run on different
workers (``execute`` on one, ``reconcile`` on the other). The policy also drops retries: a
retry would go to the same queue, so it could only delay a failure.

Two sessions run one after the other (auto-approval by the daily config); each run must
succeed with every task on the worker its queue names. In the S3 lake: the orders of both
runs, and the second session's fills and positions — the orders the first run's
``execute`` sent, reconciled on the other worker — with every reconciliation a match.
Stages that hand state to each other through files under ``./var`` (artifacts, the paper
broker's account) fail here: the next stage's worker cannot see them.

Its PostgreSQL database (``airflow_two_workers_<hex>``) and Redis DB (:data:`REDIS_DB`)
are used by no other test, so it can run beside the other production tests.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from pipelines.config import Settings
from pipelines.daily.config import CONFIG_ENV
from pipelines.lake import Lake
from pipelines.orchestration.airflow_env import REPO_ROOT
from tests.daily.helpers import CONFIG
from tests.production.cluster import Cluster, WorkerSpec, production_cluster
from tests.production.services import fresh_database, redis_queues, require_postgres_and_redis

pytestmark = pytest.mark.e2e

DAG_ID = "portfolio_rebalance"
#: Two sessions in a row: the second reconciles the fills of the orders the first sent.
SESSIONS = (dt.date(2024, 6, 6), dt.date(2024, 6, 7))
TRADE_DATE_AFTER = dt.date(2024, 6, 10)  # the second session's trade date
MARKET_START, MARKET_END, UNIVERSE = dt.date(2024, 1, 2), dt.date(2024, 6, 14), 60
BUCKET, PREFIX = "alphafactory-two-workers", "lake"
REDIS_DB = 11  # the other production tests use DB 0
WORKERS = ("worker-a", "worker-b")
#: The DAG's tasks in dependency order; the policy alternates them between the workers.
TASK_ORDER = (
    "resolve_session",
    "scores",
    "risk_model",
    "optimize",
    "pretrade",
    "approval_request",
    "approval_mode",
    "auto_approve",
    "pm_approval",
    "execute",
    "reconcile",
    "rollout",
    "report",
)
ASSIGNED = {task: WORKERS[i % len(WORKERS)] for i, task in enumerate(TASK_ORDER)}
RUN_TIMEOUT = 240.0  # per run

_LOCAL_SETTINGS = '''"""Test-only cluster policy of tests/production/test_two_workers_s3.py."""

QUEUES = {queues!r}
DEFAULT_QUEUE = {default!r}


def task_policy(task):
    """{dag_id}'s tasks to the queue chosen for them, without retries."""
    if task.dag_id == {dag_id!r}:
        task.queue = QUEUES.get(task.task_id, DEFAULT_QUEUE)
        task.retries = 0
'''


@pytest.fixture
def s3_endpoint(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The shared moto S3 server (tests/conftest.py), with the test-only credentials in the
    environment (this process and, through it, every component)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    return s3_endpoint


def _seed_lake(endpoint: str) -> Settings:
    """The simulated market's silver tables in ``s3://BUCKET/PREFIX``; the lake's settings."""
    from pipelines.testing.lakes import simulated_lake

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=BUCKET)
    settings = Settings(
        lake_root=f"s3://{BUCKET}/{PREFIX}", s3_endpoint_url=endpoint, s3_allow_http=True
    )
    simulated_lake(
        settings.lake_root,
        universe=UNIVERSE,
        start=MARKET_START,
        end=MARKET_END,
        signal=0.3,
        seed=11,
        storage_options=settings.storage_options(),
    )
    return settings


def _task_log(homes: list[Path], run_id: str, task_id: str, lines: int = 40) -> str:
    """The last ``lines`` events of ``task_id``'s log in whichever worker home holds it."""
    out = []
    for home in homes:
        for path in sorted(
            (home / "logs").glob(f"dag_id={DAG_ID}/run_id={run_id}/task_id={task_id}/**/*.log")
        ):
            events = []
            for line in path.read_text(errors="replace").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    events.append(line)
                    continue
                events.append(f"{record.get('level', '')}: {record.get('event', '')}")
                for error in record.get("error_detail") or []:
                    events.append(f"  {error.get('exc_type')}: {error.get('exc_value')}")
                    for frame in (error.get("frames") or [])[-4:]:  # the innermost calls
                        where = f"{frame.get('filename')}:{frame.get('lineno')}"
                        events.append(f"    at {where} in {frame.get('name')}")
            shown = path.relative_to(home.parent.parent)  # <worker>/airflow/logs/…
            out.append(f"--- {shown}\n" + "\n".join(events[-lines:]))
    return "\n".join(out) or f"(no log of {task_id} in {homes})"


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.xdist_group("production_cluster")  # never two clusters at once (Makefile)
def test_rebalance_on_two_workers_sharing_no_disk_with_lake_on_s3(
    tmp_path: Path, s3_endpoint: str
) -> None:
    require_postgres_and_redis()
    started = time.perf_counter()
    settings = _seed_lake(s3_endpoint)
    seed_seconds = time.perf_counter() - started
    config = tmp_path / "daily.yaml"
    data = CONFIG.model_dump(mode="json")
    data["approval"]["auto_approve"] = True
    config.write_text(yaml.safe_dump(data))

    machines = {name: tmp_path / name for name in WORKERS}
    runs: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    with (
        fresh_database("airflow_two_workers") as db_url,
        redis_queues(REDIS_DB, count=len(WORKERS)) as (broker_url, queues),
    ):
        queue_of = dict(zip(WORKERS, queues, strict=True))
        specs = [
            WorkerSpec(name, queue=queue_of[name], cwd=machine / "cwd", home=machine / "airflow")
            for name, machine in machines.items()
        ]
        local_settings = _LOCAL_SETTINGS.format(
            queues={task: queue_of[worker] for task, worker in ASSIGNED.items()},
            default=queues[0],
            dag_id=DAG_ID,
        )
        extra_env = {
            "ALPHAFACTORY_LAKE_ROOT": settings.lake_root,
            "ALPHAFACTORY_S3_ENDPOINT_URL": s3_endpoint,
            "ALPHAFACTORY_S3_ALLOW_HTTP": "true",
            CONFIG_ENV: str(config),
            # The repository's code whatever the component's working directory.
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
            local_settings=local_settings,
        ) as cluster:
            cluster.timings["seed_lake"] = seed_seconds
            _prepare(cluster)
            for session in SESSIONS:  # one after the other (max_active_runs=1)
                runs.append(_run(cluster, session))
                if runs[-1][0]["state"] != "success":
                    break
            logs = cluster.logs()
        cwd_files = {name: _files(machine / "cwd") for name, machine in machines.items()}
    print(f"test total: {time.perf_counter() - started:.1f}s")
    print("left in the workers' working directories:", cwd_files)

    homes = [machine / "airflow" for machine in machines.values()]
    for final, instances in runs:
        summary = {ti["task_id"]: (ti["state"], ti["hostname"]) for ti in instances}
        failed = [ti["task_id"] for ti in instances if ti["state"] == "failed"]
        failures = "\n".join(_task_log(homes, final["dag_run_id"], task) for task in failed)
        assert final["state"] == "success", f"{final['conf']}: {summary}\n{failures}\n{logs}"
        assert set(summary) == set(TASK_ORDER), summary  # the policy routed every task
        assert summary["pm_approval"][0] == "skipped", summary  # auto-approval by the config
        ran = {task: host for task, (state, host) in summary.items() if task != "pm_approval"}
        assert {summary[task][0] for task in ran} == {"success"}, summary
        assert ran == {task: ASSIGNED[task] for task in ran}, summary  # each on its worker
        assert set(ran.values()) == set(WORKERS), summary
    _check_lake(Lake(settings.lake_root, settings.storage_options()))


def _check_lake(lake: Lake) -> None:
    """Orders for each trade date; the second session's fills (the orders the first run's
    ``execute`` sent on one worker, seen by ``reconcile`` on the other) and positions;
    every reconciliation a match."""
    from pipelines.execution.records import read_day

    portfolio = CONFIG.portfolio_id
    for session, trade_date in zip(SESSIONS, (*SESSIONS[1:], TRADE_DATE_AFTER), strict=True):
        assert len(read_day(lake, "orders", trade_date, portfolio)) > 0, trade_date
        status = read_day(lake, "reconciliation", session, portfolio)["status"]
        assert len(status) > 0 and set(status) == {"match"}, (session, status.value_counts())
    assert len(read_day(lake, "fills", SESSIONS[1], portfolio)) > 0
    book = read_day(lake, "daily_book", SESSIONS[1], portfolio)
    assert len(book) == 1 and book["n_positions"].iloc[0] > 0, book


def _prepare(cluster: Cluster) -> None:
    """The DAG's pools; the DAG unpaused."""
    from pipelines.orchestration.airflow_env import POOLS

    for name, slots in POOLS.items():
        cluster.api.json("POST", "/pools", json={"name": name, "slots": slots})
    cluster.api.json("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})


def _run(cluster: Cluster, session: dt.date) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Trigger the session's run and wait for it: its final state and its task instances."""
    api = cluster.api
    run = api.json(
        "POST",
        f"/dags/{DAG_ID}/dagRuns",
        json={"logical_date": None, "conf": {"session": session.isoformat()}},
    )
    run_id = run["dag_run_id"]

    def finished() -> dict[str, Any] | None:
        state = api.json("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")
        return state if state["state"] in ("success", "failed") else None

    final = cluster.wait(f"run {run_id}", finished, timeout=RUN_TIMEOUT, interval=2)
    cluster.lap(f"run {session}")
    instances = api.json(
        "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", params={"limit": 100}
    )["task_instances"]
    return final, instances
