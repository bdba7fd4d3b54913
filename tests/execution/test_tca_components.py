"""Implementation shortfall split into delay, impact and fees (issue 14: the reported cost
was the shortfall against the previous close, so it carried the day's market move)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from pipelines.backtest.metrics import compute_metrics, daily_frame
from pipelines.execution.prices import SessionBar, StaticPriceSource
from pipelines.execution.tca import compute_tca

pytestmark = pytest.mark.unit

DAY = dt.date(2024, 3, 5)


def _orders() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "client_order_id": ["B", "S"],
            "portfolio_id": "P",
            "security_id": ["X", "Y"],
            "side": ["buy", "sell"],
            "quantity": [100.0, 50.0],
            "decision_price": [100.0, 40.0],
            "status": "accepted",
        }
    )


def test_shortfall_is_delay_plus_impact_and_fees_are_apart() -> None:
    prices = StaticPriceSource(
        {
            DAY: {
                "X": SessionBar(open=102.0, high=104.0, low=101.0, close=103.5, volume=1e6),
                "Y": SessionBar(open=38.0, high=39.0, low=37.0, close=37.5, volume=1e6),
            }
        }
    )
    fills = pd.DataFrame(
        {
            "client_order_id": ["B", "S"],
            "quantity": [100.0, 50.0],
            "price": [103.0, 37.8],
            "commission": [1.0, 0.5],
        }
    )
    tca = compute_tca(_orders(), fills, prices, DAY).set_index("client_order_id")
    # Buy: the market moved +2 before we started (delay), we paid 1 more (impact).
    assert tca.loc["B", "delay_cost"] == pytest.approx(100 * 2.0)
    assert tca.loc["B", "impact_cost"] == pytest.approx(100 * 1.0)
    # Sell: the market fell 2 before we started (a delay cost for a seller), we got 0.2 less.
    assert tca.loc["S", "delay_cost"] == pytest.approx(50 * 2.0)
    assert tca.loc["S", "impact_cost"] == pytest.approx(50 * 0.2)
    for cid in ("B", "S"):
        row = tca.loc[cid]
        assert row["execution_cost"] == pytest.approx(row["delay_cost"] + row["impact_cost"])
    assert tca["commission"].sum() == pytest.approx(1.5)


def test_both_return_conventions_are_reported() -> None:
    navs = [101.0, 99.0, 102.0, 104.0]
    rows = [
        {
            "date": pd.Timestamp("2024-01-02") + pd.Timedelta(days=i),
            "nav": v,
            "pnl": 0.0,
            "cost": 0.0,
            "traded_notional": 0.0,
            "gross": 1.0,
            "ic": 0.0,
        }
        for i, v in enumerate(navs)
    ]
    m = compute_metrics(daily_frame(rows, 100.0), 100.0)
    r = pd.Series([100.0, *navs]).pct_change().dropna()
    assert m.annual_return == pytest.approx(252 * r.mean())
    assert m.cagr == pytest.approx((104.0 / 100.0) ** (252 / 4) - 1)


def test_fill_sums_are_pandas_sums_bit_for_bit() -> None:
    """Filled quantity, average price and commission per order equal the pandas sums of
    its fills (NaN commission skipped), exactly: TCA totals feed the backtest's hash."""
    import numpy as np

    gen = np.random.default_rng(3)
    n_orders, n_fills = 12, 80
    cids = [f"O{i}" for i in range(n_orders)]
    orders = pd.DataFrame(
        {
            "client_order_id": cids,
            "portfolio_id": "P",
            "security_id": [f"S{i}" for i in range(n_orders)],
            "side": ["buy", "sell"] * (n_orders // 2),
            "quantity": gen.uniform(100, 1000, n_orders),
            "decision_price": gen.uniform(10, 100, n_orders),
            "status": "accepted",
        }
    )
    fills = pd.DataFrame(
        {
            # the last order has no fill
            "client_order_id": gen.choice(cids[:-1], n_fills),
            "quantity": gen.uniform(1, 50, n_fills) / 3.0,
            "price": gen.uniform(10, 100, n_fills) / 7.0,
            "commission": np.where(gen.random(n_fills) < 0.2, np.nan, gen.random(n_fills) / 3),
        }
    )
    tca = compute_tca(orders, fills, StaticPriceSource({}), DAY).set_index("client_order_id")
    for cid in cids:
        f = fills[fills["client_order_id"] == cid]
        filled = float(f["quantity"].sum()) if not f.empty else 0.0
        assert tca.loc[cid, "filled_quantity"] == filled
        if filled > 0:
            assert tca.loc[cid, "avg_fill_price"] == float(
                (f["quantity"] * f["price"]).sum() / filled
            )
        else:
            assert pd.isna(tca.loc[cid, "avg_fill_price"])
        commission = float(f["commission"].fillna(0.0).sum()) if not f.empty else 0.0
        assert tca.loc[cid, "commission"] == commission
