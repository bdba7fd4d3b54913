"""Backtests on a small simulated market: the planted signal pays, no signal does not,
and a re-run gives the same numbers bit for bit."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from pipelines.backtest import run_backtest
from pipelines.backtest.metrics import compute_metrics
from pipelines.lake import Lake
from pipelines.timeline import LATEST
from tests.daily.helpers import BACKTEST_CONFIG as CONFIG
from tests.daily.helpers import END as MARKET_END
from tests.daily.helpers import START as MARKET_START

pytestmark = [pytest.mark.unit, pytest.mark.slow]
START, END = dt.date(2024, 5, 14), dt.date(2024, 5, 30)


def _backtest(
    make_simulated_lake: Callable[..., Lake], root: Path, signal: float
) -> tuple[Lake, object]:
    lake = make_simulated_lake(
        root / "lake", universe=40, start=MARKET_START, end=MARKET_END, signal=signal, seed=5
    )
    result = run_backtest(lake, START, END, CONFIG)
    return lake, result


def test_planted_signal_pays_and_no_signal_does_not(
    tmp_path: Path, make_simulated_lake: Callable[..., Lake]
) -> None:
    _, on = _backtest(make_simulated_lake, tmp_path / "on", 0.5)
    _, off = _backtest(make_simulated_lake, tmp_path / "off", 0.0)
    m_on, m_off = on.metrics, off.metrics  # type: ignore[attr-defined]
    print(f"signal on: {m_on}\nsignal off: {m_off}")
    assert m_on.sessions == m_off.sessions == 12
    assert m_on.mean_ic > 0.1 and m_on.sharpe > 1.0
    # No information: IC and Sharpe indistinguishable from zero (|t| < 2.5), costs paid.
    assert abs(m_off.mean_ic) < 0.1
    assert abs(m_off.sharpe_tstat) < 2.5
    assert m_off.total_cost > 0
    assert m_on.sharpe > m_off.sharpe
    assert on.report_path is not None and Path(on.report_path).is_file()  # type: ignore[attr-defined]


def test_rerun_is_bit_identical(tmp_path: Path, make_simulated_lake: Callable[..., Lake]) -> None:
    lake = make_simulated_lake(
        tmp_path / "lake", universe=30, start=MARKET_START, end=MARKET_END, signal=0.3, seed=9
    )
    short = (dt.date(2024, 5, 28), dt.date(2024, 5, 31))
    first = run_backtest(lake, *short, CONFIG, write_report=False)
    second = run_backtest(lake, *short, CONFIG, write_report=False)
    assert first.run_id.endswith("-r1") and second.run_id.endswith("-r2")
    assert first.result_hash == second.result_hash
    pd.testing.assert_frame_equal(first.daily, second.daily, check_exact=True)
    runs = lake.as_of(
        "backtest_runs",
        known_at=LATEST,
        valid_at=short[1],
    ).to_pandas()
    assert set(runs["result_hash"]) == {first.result_hash}


def test_metrics_of_a_known_curve() -> None:
    daily = pd.DataFrame(
        {
            "date": pd.date_range("2024-01-01", periods=4),
            "nav": [101.0, 99.0, 102.0, 102.0],
            "ret": [0.01, 99 / 101 - 1, 102 / 99 - 1, 0.0],
            "pnl": [1.0, -2.0, 3.0, 0.0],
            "cost": [0.1, 0.1, 0.1, 0.0],
            "turnover": [0.5, 0.1, 0.1, 0.0],
            "gross": [1.0] * 4,
            "ic": [0.1, math.nan, 0.3, 0.2],
        }
    )
    m = compute_metrics(daily, 100.0)
    assert m.total_return == pytest.approx(0.02)
    assert m.max_drawdown == pytest.approx(1 - 99 / 101)
    assert m.hit_rate == pytest.approx(2 / 3)
    assert m.mean_ic == pytest.approx(0.2)
    assert m.total_cost == pytest.approx(0.3)
