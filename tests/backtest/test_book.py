"""The book over time (issue 16): exposures, concentration, costs split, trades and the
Monte Carlo of trade sequences, on books whose answers are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipelines.backtest.book import cost_split, exposures, position_episodes, sector_exposures
from pipelines.backtest.stats import rolling_beta, trade_monte_carlo

pytestmark = pytest.mark.unit

DAYS = pd.bdate_range("2024-01-02", periods=4)


def _rows(values: dict[str, list[float]], column: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"date": d, "security_id": s, column: v}
            for s, vs in values.items()
            for d, v in zip(DAYS, vs, strict=True)
        ]
    )


def test_exposures_and_concentration_of_a_hand_built_book() -> None:
    nav = pd.Series([100.0, 100.0, 200.0, 100.0], index=DAYS)
    mv = _rows(
        {"A": [30.0, 30.0, 60.0, 0.0], "B": [-10.0, -30.0, -60.0, 0.0], "C": [0, 0, 20.0, 0]},
        "market_value",
    )
    ex = exposures(mv, nav)
    first = ex.iloc[0]
    assert first["long"] == pytest.approx(0.3) and first["short"] == pytest.approx(-0.1)
    assert first["gross"] == pytest.approx(0.4) and first["net"] == pytest.approx(0.2)
    assert first["positions"] == 2 and first["largest"] == pytest.approx(0.3)
    assert first["top10_share"] == pytest.approx(1.0)  # two names: all of the gross
    # (0.3 + 0.1)² / (0.09 + 0.01) = 1.6 effective names
    assert first["effective_names"] == pytest.approx(1.6)
    # equal weights: as many effective names as names
    assert ex.iloc[1]["effective_names"] == pytest.approx(2.0)
    assert ex.iloc[2]["gross"] == pytest.approx(0.7) and ex.iloc[2]["positions"] == 3
    # a flat book: no exposures to speak of, and no names
    assert math.isnan(ex.iloc[3]["gross"]) and ex.iloc[3]["positions"] == 0


def test_sector_exposures_follow_the_sector_in_force_each_session() -> None:
    nav = pd.Series(100.0, index=DAYS)
    mv = _rows({"A": [10.0] * 4, "B": [-5.0] * 4}, "market_value")
    sectors = pd.DataFrame(
        {"A": ["Energy", "Energy", "Utilities", "Utilities"], "B": ["Energy", None, None, None]},
        index=DAYS,
    )
    sec = sector_exposures(mv, nav, sectors)
    assert sec.loc[DAYS[0], "Energy"] == pytest.approx(0.05)
    assert sec.loc[DAYS[1], "Energy"] == pytest.approx(0.10)
    assert sec.loc[DAYS[1], "unknown"] == pytest.approx(-0.05)
    assert sec.loc[DAYS[2], "Utilities"] == pytest.approx(0.10)


def test_costs_split_sums_each_component_per_session() -> None:
    tca = pd.DataFrame(
        {
            "date": [DAYS[0], DAYS[0], DAYS[2]],
            "delay_cost": [1.0, -0.5, 2.0],
            "impact_cost": [3.0, 1.0, None],
            "commission": [0.1, 0.1, 0.2],
            "opportunity_cost": [0.0, 4.0, 0.0],
            "filled_quantity": [10.0, 5.0, 2.0],
            "avg_fill_price": [100.0, 20.0, 50.0],
        }
    )
    costs = cost_split(tca, DAYS)
    assert costs.loc[DAYS[0]].to_dict() == pytest.approx(
        {"delay": 0.5, "impact": 4.0, "fees": 0.2, "opportunity": 4.0, "traded_notional": 1100.0}
    )
    assert costs.loc[DAYS[1]].sum() == 0.0  # no orders: no cost
    assert costs.loc[DAYS[2], "impact"] == 0.0 and costs.loc[DAYS[2], "delay"] == 2.0


def test_trades_sum_the_daily_pnl_of_each_position_life() -> None:
    # A: bought 10 at 100 on day 0, sold at 103 on day 2. B: short 4 at 50.5 on day 1, then
    # a buy of 8 at 49.5 on day 2 covers the 4 and goes long 4 (closes 49, then 48).
    close = pd.DataFrame({"A": [101.0, 103.02, 104.0, 104.0], "B": [50.0, 50.0, 49.0, 48.0]}, DAYS)
    ret = close.pct_change()
    qty = _rows({"A": [10.0, 10.0, 0.0, 0.0], "B": [0.0, -4.0, 4.0, 4.0]}, "quantity")
    qty["market_value"] = [
        q * close.loc[d, s] for d, s, q in qty[["date", "security_id", "quantity"]].to_numpy()
    ]
    fills = pd.DataFrame(
        {
            "date": [DAYS[0], DAYS[2], DAYS[1], DAYS[2]],
            "security_id": ["A", "A", "B", "B"],
            "side": ["buy", "sell", "sell", "buy"],
            "quantity": [10.0, 10.0, 4.0, 8.0],
            "price": [100.0, 103.0, 50.5, 49.5],
            "commission": [1.0, 1.0, 0.0, 0.0],
        }
    )
    # Cash: start 10,000; the book's NAV is cash + market value.
    cash = 10_000.0
    navs = []
    for d in DAYS:
        for f in fills[fills["date"] == d].itertuples():
            sign = 1.0 if f.side == "buy" else -1.0
            cash -= sign * f.quantity * f.price + f.commission
        navs.append(cash + float(qty.loc[qty["date"] == d, "market_value"].sum()))
    nav = pd.Series(navs, index=DAYS)
    out = position_episodes(qty, fills, close, ret, nav, 10_000.0)
    trades = out.trades.set_index(["security_id", "side"])
    a = trades.loc[("A", "long")]
    # buy at 100, held through 103.02, sold at 103: 10·(103 − 100) − 2 commissions
    assert a["pnl"] == pytest.approx(10 * 3.0 - 2.0)
    assert (a["opened"], a["closed"], a["sessions"], a["open"]) == (DAYS[0], DAYS[2], 3, False)
    assert a["ret"] == pytest.approx(28.0 / 10_000.0)
    short = trades.loc[("B", "short")]
    # the cover's half of the buy: short at 50.5, covered at 49.5
    assert short["pnl"] == pytest.approx(4 * (50.5 - 49.5))
    assert (short["opened"], short["closed"]) == (DAYS[1], DAYS[2])
    long_b = trades.loc[("B", "long")]
    # the other half: long 4 from 49.5, marked at 48 on the last day, still open
    assert long_b["pnl"] == pytest.approx(4 * (48.0 - 49.5))
    assert bool(long_b["open"]) and (long_b["opened"], long_b["closed"]) == (DAYS[2], DAYS[3])
    # every P&L of the book is in some trade
    assert out.coverage == pytest.approx(1.0)
    assert out.trades["pnl"].sum() == pytest.approx(nav.iloc[-1] - 10_000.0)


def test_trade_monte_carlo_of_known_trades() -> None:
    winners = np.full(50, 0.01)
    mc = trade_monte_carlo(winners + np.linspace(0, 1e-4, 50), trades_per_year=100)
    assert mc.horizon == 100 and mc.probability_of_loss == 0.0 and mc.drawdown_p95 == 0.0
    assert mc.wealth_p05 > 1.01**100 * 0.999
    coin = np.array([0.02, -0.02] * 50)
    mc = trade_monte_carlo(coin, trades_per_year=252, paths=4000)
    # a fair coin of ±2%: wealth shrinks by the variance drag, Sharpe centred on 0
    assert abs(mc.sharpe_p50) < 0.5 and 0.3 < mc.probability_of_loss < 0.8
    assert mc.drawdown_p50 > 0.05
    assert trade_monte_carlo(coin[:5], trades_per_year=252).paths == 0  # too few trades


def test_rolling_beta_recovers_a_known_beta() -> None:
    days = pd.bdate_range("2023-01-02", periods=300)
    rng = np.random.default_rng(4)
    b = pd.Series(rng.normal(0, 0.01, len(days)), index=days)
    r = 0.7 * b + pd.Series(rng.normal(0, 0.0005, len(days)), index=days)
    beta = rolling_beta(r, b, window=63)
    assert len(beta) == len(days) - 62 and beta.index[0] == days[62]
    assert beta.to_numpy() == pytest.approx(0.7, abs=0.03)


def test_numbers_to_the_integer_read_as_integers() -> None:
    # The trades' "mean P&L / trade" asks for no decimals; it failed a sweep's reports.
    from pipelines.report import html

    assert html.fmt(1092.4, 0) == "1,092" and html.fmt(-12.6, 0) == "-13"
    assert html.fmt(0.000066191, 4) == "0.00006619"
