"""Airflow in production mode on this machine: PostgreSQL + CeleryExecutor on Redis.

Starts every component as its own process — scheduler, DAG processor, API server and two
Celery workers — with the environment of :func:`production_environment`, then drives them
only through the public REST API, as an operator would: log in, unpause, trigger the daily
``lake_maintenance`` run for one session, wait for it, and check that its task instances
ran on the two Celery workers. ``lake_maintenance`` needs no vendor, only a lake, so the
test builds a small one in ``tmp_path``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.config import get_settings
from pipelines.lake import Lake
from tests.lake.helpers import prices, ts
from tests.production.cluster import production_cluster

pytestmark = pytest.mark.integration

DAG_ID = "lake_maintenance"
# The run for session 2024-07-05 is due at 21:30 New York = 01:30 UTC the next day
# (ExchangeCalendarTimetable.run_time); the 4 July holiday falls inside its interval.
LOGICAL_DATE = "2024-07-06T01:30:00+00:00"
EXPECTED_INTERVAL = ("2024-07-04T01:30:00Z", "2024-07-06T01:30:00Z")
WORKERS = ("worker-a", "worker-b")
RUN_TIMEOUT = 240.0


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
@pytest.mark.xdist_group("production_cluster")  # never two clusters at once (Makefile)
def test_daily_dag_runs_on_celery_workers_with_postgres(
    tmp_path: Path,
    postgres_db: str,
    redis_queue: tuple[str, str],
    small_lake: tuple[str, int],
) -> None:
    lake_root, prices_version = small_lake
    with production_cluster(
        tmp_path,
        postgres_db=postgres_db,
        redis_queue=redis_queue,
        dag_ids=[DAG_ID],
        workers=WORKERS,
    ) as cluster:
        api = cluster.api
        api.json("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
        run = api.json(
            "POST", f"/dags/{DAG_ID}/dagRuns", json={"logical_date": LOGICAL_DATE, "conf": {}}
        )
        run_id = run["dag_run_id"]

        def finished() -> dict[str, object] | None:
            state = api.json("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")
            return state if state["state"] in ("success", "failed") else None

        final = cluster.wait(f"run {run_id}", finished, timeout=RUN_TIMEOUT, interval=2)
        cluster.lap("run")
        instances = api.json(
            "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", params={"limit": 100}
        )["task_instances"]
        logs = cluster.logs()
    print("task durations (s):", sorted(round(ti["duration"] or 0, 1) for ti in instances))

    summary = {
        f"{ti['task_id']}[{ti['map_index']}]": (ti["state"], ti["hostname"]) for ti in instances
    }
    assert final["state"] == "success", f"{summary}\n{logs}"
    assert (final["data_interval_start"], final["data_interval_end"]) == EXPECTED_INTERVAL
    from pipelines.lake.catalog import all_tables

    mapped = [ti for ti in instances if ti["task_id"] == "maintain_table"]
    assert len(mapped) == len(all_tables()), summary
    assert {ti["state"] for ti in instances} == {"success"}, summary
    # Every task instance ran on one of our Celery workers, and both workers took work.
    assert {ti["hostname"] for ti in instances} == set(WORKERS), summary
    maintained = Lake(lake_root).table("prices")
    assert maintained is not None and maintained.version() > prices_version  # really maintained
