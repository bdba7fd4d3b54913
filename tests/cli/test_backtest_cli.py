"""``alphafactory backtest --buffer-sessions K --resume --retrain S`` reaches ``run_backtest``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

import pipelines.backtest
import pipelines.backtest.report
from pipelines.backtest.run import DEFAULT_BUFFER_SESSIONS
from pipelines.cli import backtest as backtest_cli
from pipelines.cli.main import app
from pipelines.config import get_settings

pytestmark = pytest.mark.unit

runner = CliRunner()


@pytest.fixture(autouse=True)
def _lake_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ALPHAFACTORY_LAKE_ROOT", str(tmp_path / "lake"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    def fake(lake: object, start: dt.date, end: dt.date, config: object, **kw: Any) -> Any:
        seen.append({**kw, "config": config, "range": (start, end)})
        metrics = SimpleNamespace(to_dict=lambda: {"sharpe": 1.0})
        resumed = dt.date(2024, 5, 3) if kw["resume"] else None
        return SimpleNamespace(
            run_id="bt-x-r1",
            start=start,
            end=end,
            metrics=metrics,
            result_hash="h",
            report_path=None,
            resumed_after=resumed,
            daily=None,
            retrains=[],
        )

    monkeypatch.setattr(pipelines.backtest, "run_backtest", fake)
    # The report (its lake reads) has its own tests (tests/backtest/test_backtest.py).
    monkeypatch.setattr(
        pipelines.backtest.report, "write_analysed_report", lambda *a: ("r.html", None)
    )
    # The lake is empty here: the history check has its own test (test_bad_input.py).
    monkeypatch.setattr(backtest_cli, "_check_history", lambda *a: None)
    return seen


def test_resume_and_buffer_sessions_reach_the_backtest(calls: list[dict[str, Any]]) -> None:
    args = ["backtest", "--start", "2024-05-01", "--end", "2024-05-31"]
    result = runner.invoke(app, [*args, "--resume", "--buffer-sessions", "5"])
    assert result.exit_code == 0, result.output
    assert (calls[-1]["resume"], calls[-1]["buffer_sessions"]) == (True, 5)
    assert calls[-1]["write_report"] is False  # the CLI writes it, with the lake's analysis
    assert "report: r.html" in result.stdout
    assert "resumed after 2024-05-03" in result.stdout
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (calls[-1]["resume"], calls[-1]["buffer_sessions"]) == (False, DEFAULT_BUFFER_SESSIONS)


def test_retrain_reaches_the_backtest_config(calls: list[dict[str, Any]]) -> None:
    args = ["backtest", "--start", "2024-05-01", "--end", "2024-05-31"]
    result = runner.invoke(app, [*args, "--retrain", "monthly"])
    assert result.exit_code == 0, result.output
    assert calls[-1]["config"].retrain == "monthly"
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert calls[-1]["config"].retrain == "none"  # the config's own (default: none)
    result = runner.invoke(app, [*args, "--retrain", "daily"])
    assert result.exit_code != 0 and "monthly" in result.output


def test_a_range_of_dates_runs_its_sessions(calls: list[dict[str, Any]]) -> None:
    """A weekend at either end of the range is not an error: the run covers the sessions
    within it, and says so."""
    result = runner.invoke(app, ["backtest", "--start", "2024-06-01", "--end", "2024-06-30"])
    assert result.exit_code == 0, result.output
    assert calls[-1]["range"] == (dt.date(2024, 6, 3), dt.date(2024, 6, 28))
    assert "--start 2024-06-01 is not a XNYS session: from 2024-06-03" in result.stdout
    assert "--end 2024-06-30 is not a XNYS session: through 2024-06-28" in result.stdout
    # a range with no session in it is one line naming it
    result = runner.invoke(app, ["backtest", "--start", "2024-06-01", "--end", "2024-06-02"])
    assert result.exit_code == 1
    assert "no XNYS session from 2024-06-01 to 2024-06-02" in result.stderr
