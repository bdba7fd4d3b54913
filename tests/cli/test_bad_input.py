"""Bad input at the CLI ends in one line and a non-zero exit, never a traceback or an
empty result that looks like success (issue 15's CLI cases; each ended in a traceback or
an empty report with exit 0 before)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli.main import app
from pipelines.config import get_settings

pytestmark = pytest.mark.unit

runner = CliRunner()


@pytest.fixture(autouse=True)
def _empty_lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ALPHAFACTORY_LAKE_ROOT", str(tmp_path / "lake"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _refused(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code in (1, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    out = result.stderr or result.output
    assert "Traceback" not in out
    return out


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["backtest", "--start", "2024-06-20", "--end", "2024-06-10"], "is before --start"),
        # a weekend start is not refused (the range's sessions run, tests/cli/test_backtest_cli.py)
        (["backtest", "--start", "2024-06-08", "--end", "2024-06-09"], "no XNYS session from"),
        (["backtest", "--start", "2024-06-10", "--end", "2027-06-17"], "is in the future"),
        (["report", "--date", "2024-06-08"], "not a XNYS session"),
        (["report", "--date", "1990-01-02"], "holds no prices for 1990-01-02"),
        (
            ["lake", "as-of", "prices", "--known-at", "yesterday", "--valid-at", "2024-06-03"],
            "is not an ISO 8601 time",
        ),
        (
            [
                "lake",
                "as-of",
                "prices",
                "--known-at",
                "2024-06-03T22:00:00+00:00",
                "--valid-at",
                "2024-06-10..2024-06-01",
            ],
            "ends before it starts",
        ),
        (["lake", "history", "prices", "--key", "secid="], "both sides"),
        (
            ["airflow", "dags-test", "no_such_dag", "2024-06-03"],
            "the DAGs are backtest_sweep, daily_research",
        ),
        (["research", "features", "2027-06-17"], "is in the future"),
        (["research", "score", "2024-06-08"], "nearest: 2024-06-07"),
        (["ingest", "day", "--date", "2024-06-08"], "nearest: 2024-06-07"),
    ],
)
def test_bad_input_is_one_line(args: list[str], says: str) -> None:
    assert says in _refused(args)


def test_a_bad_where_column_names_the_column(tmp_path: Path) -> None:
    import datetime as dt

    import pandas as pd

    from pipelines.lake import Lake

    lake = Lake(str(tmp_path / "lake"))
    lake.write(
        "prices",
        pd.DataFrame(
            {
                "security_id": ["S1"],
                "ticker": ["A"],
                "valid_date": [dt.date(2024, 6, 3)],
                "open": [1.0],
                "high": [1.0],
                "low": [1.0],
                "close": [1.0],
                "volume": [1.0],
                "currency": ["USD"],
            }
        ),
        known_at=dt.datetime(2024, 6, 3, 22, tzinfo=dt.UTC),
        batch_id="b1",
    )
    out = _refused(
        [
            "lake",
            "as-of",
            "prices",
            "--known-at",
            "2024-06-04T00:00:00+00:00",
            "--valid-at",
            "2024-06-03",
            "--where",
            "nosuch = 1",
        ]
    )
    assert "nosuch" in out


def test_a_backtest_without_history_before_its_start_names_the_earliest_start(
    tmp_path: Path,
) -> None:
    """The README's backtest started on the lake's first session and stopped on it with
    "as_of … not in the returns index"."""
    import datetime as dt

    from pipelines.lake import Lake
    from pipelines.testing.lakes import simulated_lake
    from pipelines.timeline import trading_calendar

    start, end = dt.date(2024, 1, 2), dt.date(2024, 3, 1)
    simulated_lake(tmp_path / "lake", universe=5, start=start, end=end, seed=3)
    assert isinstance(Lake(str(tmp_path / "lake")), Lake)
    out = _refused(["backtest", "--start", "2024-01-02", "--end", "2024-02-15"])
    earliest = trading_calendar().offset(start, 21)
    assert f"start on or after {earliest}" in out


def test_a_degenerate_risk_model_is_one_line(tmp_path: Path) -> None:
    """Eight names over a month: the market factor has no variance, the betas divide by
    it, and the solver got NaN parameters ("Parameter value must be real" traceback)."""
    import datetime as dt

    from pipelines.testing.lakes import simulated_lake

    simulated_lake(
        tmp_path / "lake", universe=8, start=dt.date(2024, 1, 2), end=dt.date(2024, 3, 1), seed=3
    )
    out = _refused(["backtest", "--start", "2024-02-05", "--end", "2024-02-09"])
    assert "the risk model is not finite" in out
