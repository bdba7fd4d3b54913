"""The lake_maintenance DAG's wiring (its run is in tests/dags/test_e2e_lake_maintenance.py)."""

from __future__ import annotations

from datetime import time

import pytest

from pipelines.orchestration.airflow_env import DAGS_FOLDER
from pipelines.orchestration.callbacks import on_failure_log
from pipelines.orchestration.timetable import ExchangeCalendarTimetable

pytestmark = pytest.mark.unit


def _dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_FOLDER / "lake_maintenance.py"))
    return bag.dags["lake_maintenance"]


def test_wiring() -> None:
    dag = _dag()
    assert dag.timetable == ExchangeCalendarTimetable("XNYS", time(21, 30), "America/New_York")
    assert dag.catchup is False
    assert set(dag.task_dict) == {"declared_tables", "maintain_table"}
    maintain = dag.task_dict["maintain_table"]
    assert maintain.upstream_task_ids == {"declared_tables"}
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    assert isinstance(maintain, MappedOperator)
    assert [o.name for o in maintain.outlets] == ["alphafactory-lake-tables"]
    for task in dag.tasks:
        assert task.retries == 3
        assert task.retry_exponential_backoff == 2.0
        assert task.on_failure_callback in (on_failure_log, [on_failure_log])
