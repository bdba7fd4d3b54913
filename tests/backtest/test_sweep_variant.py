"""A sweep variant whose run finished but whose task died before the report (a retry finds
the run in ``backtest_runs``): the retry writes the report and its figures, so a reused
variant is reported like a new one (issue 16)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pipelines.backtest.run import run_backtest
from pipelines.backtest.sweep import _daily_from_lake, _materialise, parse_grid, run_variant
from pipelines.lake import Lake

pytestmark = pytest.mark.integration


def test_a_finished_run_without_its_report_gets_one_on_retry(
    make_simulated_lake: Callable[..., Lake], tmp_path: Path
) -> None:
    lake = make_simulated_lake(
        universe=20, start=dt.date(2024, 1, 2), end=dt.date(2024, 5, 31), signal=0.1
    )
    grid: dict[str, Any] = {
        "name": "retry",
        "start": "2024-05-14",
        "end": "2024-05-24",
        "config": {"lookback_sessions": 60},
        "grid": {"alpha_ic": [0.05]},
    }
    sweep = parse_grid(grid, source=str(tmp_path / "grid.yaml"), base_dir=tmp_path)
    (vid,) = [v.variant_id for v in sweep.variants]
    cfg = _materialise(sweep.base, sweep.variant(vid), sweep.source)
    # The task's run, stored; the task dies before its report.
    run = run_backtest(lake, sweep.start, sweep.end, cfg, write_report=False)
    report = Path(f"{lake.location.root}/reports/backtest-{run.run_id}.html")
    assert not report.exists()
    retried = run_variant(lake, sweep, vid)
    assert retried.reused and retried.run_id == run.run_id
    assert retried.result_hash == run.result_hash
    assert retried.report_path == str(report) and report.exists()
    text = report.read_text()
    assert "Against the universe" in text and "Book over time" in text
    # the report's figures, as a new run's result has them
    assert "excess_return_equal_weight" in retried.metrics
    assert retried.metrics["sharpe"] == pytest.approx(run.metrics.sharpe)
    # the report was built from the stored curve: the run's own, column for column
    stored = _daily_from_lake(lake, run.run_id)
    mine = run.daily.assign(date=pd.to_datetime(run.daily["date"]).dt.date)
    pd.testing.assert_frame_equal(stored, mine[list(stored.columns)], check_dtype=False)
