"""leak_audit through Airflow: the weekly run audits the week before it and records the
verdict in the lake, where ``alphafactory status`` shows it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli.main import app
from pipelines.config import get_settings
from pipelines.lake import Lake
from pipelines.orchestration.airflow_env import airflow_environment, run_dag_test
from pipelines.research.stages import (
    ResearchContext,
    compute_features,
    compute_labels,
    compute_universe,
)
from pipelines.timeline import trading_calendar

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MONDAY = dt.date(2020, 2, 10)  # first session of its ISO week: the audit runs


@pytest.mark.e2e
@pytest.mark.slow
def test_weekly_run_records_a_clean_verdict(
    tmp_path: Path, make_simulated_lake: Callable[..., Lake]
) -> None:
    root = get_settings().lake_root
    lake = make_simulated_lake(
        Path(root), universe=30, start=dt.date(2019, 9, 3), end=dt.date(2020, 3, 31)
    )
    week = trading_calendar().sessions(dt.date(2020, 2, 3), dt.date(2020, 2, 7))
    for day in week:
        ctx = ResearchContext(lake, day)
        compute_universe(ctx)
        compute_features(ctx)
        compute_labels(ctx)

    result = run_dag_test(
        "leak_audit",
        MONDAY,
        env=airflow_environment(vendor_state_dir=tmp_path / "no-vendor"),
        extra_env={"ALPHAFACTORY_LAKE_ROOT": root},
    )
    assert result.ok, result.output[-5000:]
    assert result.task_states == {"is_audit_session": "success", "audit": "success"}

    rows = Lake(root).dataset("leak_audits").to_table().to_pandas()
    assert set(rows["start"].astype(str)) == {"2020-02-03"}
    assert set(rows["end"].astype(str)) == {"2020-02-07"}
    verdicts = dict(zip(rows["stage"] + "/" + rows["against"], rows["verdict"], strict=True))
    assert len(verdicts) == 7
    # no model trained on this lake: scores are not compared; everything else identical
    assert verdicts.pop("scores/lake") == "not_compared"
    assert set(verdicts.values()) == {"identical"}
    status = CliRunner().invoke(app, ["status", "--no-runs"])
    assert status.exit_code == 0, status.output
    assert "over 2020-02-03..2020-02-07: clean" in status.output
