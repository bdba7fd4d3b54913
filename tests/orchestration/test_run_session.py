"""A run of daily_research "for D" computes D (issue 18: dags-test D computed D - 1)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pendulum
import pytest

from pipelines.orchestration.dagtest import _resolve_logical_date
from pipelines.orchestration.run_session import run_session, session_run_time

pytestmark = pytest.mark.unit

FRIDAY = dt.date(2026, 12, 4)


DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def research_dag() -> Any:
    """The daily_research DAG as Airflow parses it."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS / "daily_research.py")).dags["daily_research"]


def test_dags_test_of_a_session_computes_that_session(research_dag: Any) -> None:
    # what `alphafactory airflow dags-test daily_research 2026-12-04` runs at
    when = _resolve_logical_date(research_dag, FRIDAY.isoformat())
    assert when == session_run_time(FRIDAY)
    # dag.test gives a manual run of an asset-scheduled DAG the interval (when, when]
    assert run_session(None, when, when, when) == FRIDAY
    # the old midnight-UTC logical date was still Thursday in New York
    midnight = pendulum.datetime(2026, 12, 4, tz="UTC")
    assert run_session(None, midnight, midnight, midnight) == dt.date(2026, 12, 3)


def test_asset_triggered_run_after_the_ingest_computes_its_session() -> None:
    # vendor_ingest for D finishes a little after D's run time; the runs it triggers
    # carry no logical date, only run_after
    after = session_run_time(FRIDAY) + dt.timedelta(minutes=7)
    assert run_session(None, None, None, after) == FRIDAY
    # a weekend run maps to the Friday before
    saturday = pendulum.datetime(2026, 12, 5, 12, tz="America/New_York")
    assert run_session({}, saturday, None, None) == FRIDAY


def test_conf_session_wins() -> None:
    when = session_run_time(FRIDAY)
    assert run_session({"session": "2026-12-02"}, when, when, when) == dt.date(2026, 12, 2)
