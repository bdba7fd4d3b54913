"""Airflow in production mode on this machine: PostgreSQL + CeleryExecutor on Redis.

Starts every component as its own process — scheduler, DAG processor, API server and two
Celery workers — with the environment of :func:`production_environment`, then drives them
only through the public REST API, as an operator would: log in, unpause, trigger the daily
``lake_maintenance`` run for one session, wait for it, and check that its task instances
ran on the two Celery workers. ``lake_maintenance`` needs no vendor, only a lake, so the
test builds a small one in ``tmp_path``.
"""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

from pipelines.config import get_settings
from pipelines.lake import Lake
from pipelines.orchestration.airflow_env import REPO_ROOT, AirflowEnv
from pipelines.orchestration.production import (
    ADMIN_USER,
    ProductionSecrets,
    RunningComponent,
    component_command,
    migrate_metadata_db,
    prepare_production_home,
    production_environment,
    start_component,
    stop_components,
)
from tests.lake.helpers import prices, ts
from tests.production.airflow_api import AirflowApi, wait_for

DAG_ID = "lake_maintenance"
# The run for session 2024-07-05 is due at 21:30 New York = 01:30 UTC the next day
# (ExchangeCalendarTimetable.run_time); the 4 July holiday falls inside its interval.
LOGICAL_DATE = "2024-07-06T01:30:00+00:00"
EXPECTED_INTERVAL = ("2024-07-04T01:30:00Z", "2024-07-06T01:30:00Z")
WORKERS = ("worker-a", "worker-b")
RUN_TIMEOUT = 240.0


def _require_production_packages() -> None:
    """Fail (not skip) with the fix when a package production mode needs is missing."""
    missing = []
    for dist in ("apache-airflow-providers-celery", "psycopg2-binary", "asyncpg", "redis"):
        try:
            version(dist)
        except PackageNotFoundError:
            missing.append(dist)
    if missing:
        pytest.fail(f"production mode needs {missing}: install them (pyproject dependencies)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_cluster(env: AirflowEnv, log_dir: Path) -> list[RunningComponent]:
    """Workers first in the list: :func:`stop_components` stops them first."""
    started = [
        start_component(
            name,
            component_command(
                "celery-worker", env, worker_name=name, concurrency=2, serve_logs=False
            ),
            env,
            log_dir,
            extra_env={"ALPHAFACTORY_WORKER_NAME": name},
        )
        for name in WORKERS
    ]
    for component in ("scheduler", "dag-processor", "api-server"):
        started.append(start_component(component, component_command(component, env), env, log_dir))
    return started


def _ready(worker: RunningComponent) -> Callable[[], bool]:
    """Whether the Celery worker logged ``<node> ready.`` (it consumes from then on)."""
    return lambda: " ready." in worker.log_path.read_text(errors="replace")


def _check_alive(components: list[RunningComponent]) -> None:
    for component in components:
        code = component.process.poll()
        if code is not None:
            raise AssertionError(f"{component.name} exited with {code}:\n{component.log_tail()}")


@pytest.fixture
def small_lake() -> Iterator[tuple[str, int]]:
    """The test's lake (root from the autouse settings fixture) with four small commits."""
    root = get_settings().lake_root
    lake = Lake(root)
    for day in (2, 3, 4, 5):  # several small commits: something to compact
        lake.write("prices", prices(day, ["A", "B"]), known_at=ts(day))
    table = lake.table("prices")
    assert table is not None
    yield root, table.version()


@pytest.mark.integration
@pytest.mark.slow
def test_daily_dag_runs_on_celery_workers_with_postgres(
    tmp_path: Path,
    postgres_db: str,
    redis_queue: tuple[str, str],
    small_lake: tuple[str, int],
) -> None:
    _require_production_packages()
    lake_root, prices_version = small_lake
    broker_url, queue = redis_queue
    # Only the DAG under test: other DAG files would cost parse time and need a vendor.
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / f"{DAG_ID}.py").symlink_to(REPO_ROOT / "dags" / f"{DAG_ID}.py")
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    prod_secrets = ProductionSecrets.generate()
    env = production_environment(
        secrets=prod_secrets,
        db_url=postgres_db,
        broker_url=broker_url,
        api_url=base_url,
        queue=queue,
        dags_folder=dags,
        vendor_state_dir=tmp_path / "no-vendor",
    )
    # The scheduler would otherwise add a scheduled run for the latest session as soon as
    # the DAG is unpaused (catchup is off, not absent); this test drives one manual run.
    env = dataclasses.replace(
        env, values={**env.values, "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}
    )

    timings: dict[str, float] = {}
    started = time.perf_counter()
    prepare_production_home(env, prod_secrets)
    migrate_metadata_db(env)
    timings["migrate"] = time.perf_counter() - started

    components: list[RunningComponent] = []
    api = AirflowApi(base_url)
    try:
        components = _start_cluster(env, tmp_path / "component-logs")

        def alive() -> None:
            _check_alive(components)

        wait_for("the API server", api.healthy, timeout=150, alive=alive)
        wait_for("the execution API", api.execution_api_ready, timeout=90, alive=alive)
        api.login(ADMIN_USER, prod_secrets.admin_password)
        timings["api_up"] = time.perf_counter() - started

        def dag_parsed() -> bool:
            return api.request("GET", f"/dags/{DAG_ID}").status_code == 200

        wait_for(f"{DAG_ID} to be parsed", dag_parsed, timeout=90, alive=alive)
        for worker in components[: len(WORKERS)]:
            wait_for(f"{worker.name} to be ready", _ready(worker), timeout=60, alive=alive)
        timings["cluster_ready"] = time.perf_counter() - started

        api.json("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
        run = api.json(
            "POST", f"/dags/{DAG_ID}/dagRuns", json={"logical_date": LOGICAL_DATE, "conf": {}}
        )
        run_id = run["dag_run_id"]

        def finished() -> dict[str, object] | None:
            state = api.json("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")
            return state if state["state"] in ("success", "failed") else None

        final = wait_for(f"run {run_id}", finished, timeout=RUN_TIMEOUT, interval=2, alive=alive)
        timings["run"] = time.perf_counter() - started - timings["cluster_ready"]
        instances = api.json(
            "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", params={"limit": 100}
        )["task_instances"]
    finally:
        api.close()
        stop_started = time.perf_counter()
        exit_seconds = stop_components(components)
        timings["stop"] = time.perf_counter() - stop_started
    print("production-mode timings (s):", {k: round(v, 1) for k, v in timings.items()})
    print("exit after SIGTERM (s):", {k: round(v, 1) for k, v in exit_seconds.items()})
    print("task durations (s):", sorted(round(ti["duration"] or 0, 1) for ti in instances))

    summary = {
        f"{ti['task_id']}[{ti['map_index']}]": (ti["state"], ti["hostname"]) for ti in instances
    }
    logs = "\n".join(f"--- {c.name}\n{c.log_tail(30)}" for c in components)
    assert final["state"] == "success", f"{summary}\n{logs}"
    assert (final["data_interval_start"], final["data_interval_end"]) == EXPECTED_INTERVAL
    from pipelines.lake.tables import all_tables

    mapped = [ti for ti in instances if ti["task_id"] == "maintain_table"]
    assert len(mapped) == len(all_tables()), summary
    assert {ti["state"] for ti in instances} == {"success"}, summary
    # Every task instance ran on one of our Celery workers, and both workers took work.
    assert {ti["hostname"] for ti in instances} == set(WORKERS), summary
    maintained = Lake(lake_root).table("prices")
    assert maintained is not None and maintained.version() > prices_version  # really maintained
