"""``alphafactory backtest sweep --grid FILE`` through Airflow, embedded (``dag.test()``):
one mapped task per variant (four here; eight on two Celery workers in
tests/production/test_sweep_celery.py), each variant's result in the lake and its own
folder, one comparison report; a second run of the same grid, on the embedded scheduler
and LocalExecutor (``--scheduler``), reuses every variant (issue 16)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.backtest.sweep import load_grid, sweep_folder
from pipelines.cli.main import app
from pipelines.lake import Lake
from pipelines.net import free_port
from pipelines.timeline import ALL_DATES, LATEST
from tests.backtest.sweep_helpers import GRID, MARKET, SMALL_GRID, write_grid

pytestmark = pytest.mark.e2e


@pytest.mark.e2e
@pytest.mark.slow
def test_sweep_through_airflow_embedded(
    tmp_path: Path, make_simulated_lake: Callable[..., Lake]
) -> None:
    lake = make_simulated_lake(**MARKET)
    grid = write_grid(tmp_path, SMALL_GRID)
    sweep = load_grid(grid)
    assert len(sweep.variants) == 4

    started = time.perf_counter()
    result = CliRunner().invoke(app, ["backtest", "sweep", "--grid", str(grid)])
    first = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    print(result.output)
    report = Path(f"{lake.location.root}/reports/sweep-{sweep.sweep_id}.html")
    assert f"report: {report}" in result.output.replace("\n", "")
    assert "backtest_sweep: success" in result.output
    text = report.read_text()
    for v in sweep.variants:
        assert v.variant_id in text
    summary = json.loads(Path(f"{sweep_folder(lake, sweep)}/comparison.json").read_text())
    assert summary["n_trials"] == 4 and len(summary["ranking"]) == 4
    print(
        f"sweep of 4 variants: {first:.1f}s; best {summary['best']} "
        f"DSR {summary['best_deflated_sharpe']}"
    )
    runs = lake.as_of("backtest_runs", known_at=LATEST, valid_at=ALL_DATES).to_pandas()
    assert len(runs) == 4 and runs["run_id"].str.endswith("-r1").all()
    assert {r["run_id"] for r in summary["ranking"]} == set(runs["run_id"])
    # Each variant's own report carries the benchmark-relative and signal sections.
    one = Path(f"{lake.location.root}/reports/backtest-{runs['run_id'].iloc[0]}.html")
    assert "Against the universe" in one.read_text() and "rank IC t-stat" in one.read_text()

    # The same grid again, on the scheduler and LocalExecutor this time: every variant
    # reused (no new run in the lake), the same report.
    started = time.perf_counter()
    again = CliRunner().invoke(
        app, ["backtest", "sweep", "--grid", str(grid), "--scheduler", "--port", str(free_port())]
    )
    print(f"again on the scheduler: {time.perf_counter() - started:.1f}s")
    assert again.exit_code == 0, again.output
    assert "backtest_sweep: success" in again.output
    runs_after = lake.as_of("backtest_runs", known_at=LATEST, valid_at=ALL_DATES).to_pandas()
    assert len(runs_after) == 4
    assert report.read_text() == text


@pytest.mark.e2e
def test_a_bad_grid_is_refused_in_one_line(tmp_path: Path) -> None:
    path = write_grid(tmp_path, {**GRID, "grid": {"policy.risk": [1]}})
    result = CliRunner().invoke(app, ["backtest", "sweep", "--grid", str(path)])
    assert result.exit_code == 1
    assert f"sweep grid {path}: key 'grid.policy.risk'" in result.output
