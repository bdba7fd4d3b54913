"""The shared failure callback logs one clear line and never raises."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pendulum
import pytest

from pipelines.orchestration.callbacks import failure_message, on_failure_log

pytestmark = pytest.mark.unit


def test_one_line_with_dag_task_date_and_exception(caplog: pytest.LogCaptureFixture) -> None:
    ti = SimpleNamespace(
        dag_id="lake_maintenance", task_id="maintain_table", map_index=3, run_id="r1"
    )
    context = {
        "ti": ti,
        "run_id": "scheduled__2024-07-05T23:00:00+00:00",
        "logical_date": pendulum.datetime(2024, 7, 3, 23, tz="UTC"),
        "exception": ValueError("vacuum failed\nsecond line"),
    }
    with caplog.at_level(logging.ERROR, logger="alphafactory.orchestration"):
        on_failure_log(context)
    (record,) = caplog.records
    assert record.getMessage() == failure_message(context)
    assert "\n" not in record.getMessage()
    assert record.getMessage() == (
        "FAILED dag=lake_maintenance task=maintain_table[3] "
        "run_id=scheduled__2024-07-05T23:00:00+00:00 logical_date=2024-07-03T23:00:00+00:00 "
        "error=ValueError: vacuum failed second line"
    )


def test_never_raises_on_a_strange_context(caplog: pytest.LogCaptureFixture) -> None:
    on_failure_log({})
    on_failure_log({"logical_date": object()})  # .isoformat missing: logged, not raised
    assert caplog.records
