"""Transaction cost analysis per order (Perold's implementation shortfall).

For an order with side sign ``s`` (+1 buy, −1 sell), ordered quantity ``Q``, filled ``q`` at
average price ``p̄`` and commission ``C``:

* ``shortfall_<bench>_bps = s · (p̄ / bench − 1) · 10⁴`` for three benchmarks:
  **decision** price (the price the targets were computed at — the previous close),
  **arrival** price (the trade date's open, when the order starts working) and the
  session **VWAP**. Positive = cost.
* ``execution_cost = s · q · (p̄ − decision)`` (currency), split into the **delay** cost
  ``s · q · (arrival − decision)`` (the market's move between the decision and the start
  of trading: not a cost of trading) and the **impact** cost ``s · q · (p̄ − arrival)``
  (what trading cost: spread and impact); fees are ``C``;
  ``opportunity_cost = s · (Q − q) · (close − decision)`` — what the unfilled remainder
  missed, marked at the session close — and ``total_shortfall`` = both + ``C``.

**VWAP without intraday data.** The vendor's prices are daily OHLCV, so the VWAP benchmark
is the typical price ``(H + L + C) / 3`` (``vwap_method = typical_price``); a price source
that carries a true VWAP is used as is (``vwap_method = vendor``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from pipelines.execution.prices import PriceSource
from pipelines.execution.records import now_utc, read_day, short_hash
from pipelines.lake import get_table
from pipelines.lake.interface import Store

TCA_COLUMNS = [f.name for f in get_table("tca").fields]


def _bps(s: float, price: float | None, bench: float | None) -> float | None:
    if price is None or bench is None or not (bench > 0) or math.isnan(price):
        return None
    return s * (price / bench - 1.0) * 1e4


def _nansum(values: np.ndarray) -> float:
    """``pd.Series(values).sum()``: the sum with NaN taken as 0 (pandas' own rule)."""
    return float(np.where(np.isnan(values), 0.0, values).sum())


def compute_tca(
    orders: pd.DataFrame, fills: pd.DataFrame, prices: PriceSource, trade_date: dt.date
) -> pd.DataFrame:
    """TCA rows (``tca`` columns) for the accepted ``orders`` given their ``fills``."""
    accepted = orders[orders["status"] == "accepted"]
    bars = prices.session(trade_date, sorted(set(accepted["security_id"].astype(str))))
    rows = []
    # Each order's fills, in the fills' row order (what a boolean mask per order selects),
    # found by one grouping instead of a scan of every fill per order.
    by_order = {str(k): v for k, v in fills.groupby("client_order_id", sort=False).indices.items()}
    # The sums pandas takes of each order's fills (NaN skipped: numpy's sum of the values
    # with NaN as 0, over the same values in the same order, so the same floats), on numpy
    # arrays instead of a pandas selection per order.
    quantity = fills["quantity"].to_numpy(dtype=float)
    notional = quantity * fills["price"].to_numpy(dtype=float)
    fees = fills["commission"].to_numpy(dtype=float)
    n = len(accepted)
    # The orders' columns as Python values (what to_dict("records") gives, per column).
    cols: dict[str, list[Any]] = {
        c: accepted[c].tolist()
        for c in ("client_order_id", "portfolio_id", "security_id", "side", "quantity")
    }
    cols["decision_price"] = (
        accepted["decision_price"].tolist() if "decision_price" in accepted else [None] * n
    )
    for i in range(n):
        o = {c: v[i] for c, v in cols.items()}
        cid = str(o["client_order_id"])
        at = by_order.get(cid)
        s = 1.0 if o["side"] == "buy" else -1.0
        ordered = float(o["quantity"])
        filled = _nansum(quantity[at]) if at is not None and len(at) else 0.0
        avg = _nansum(notional[at]) / filled if at is not None and filled > 0 else None
        commission = _nansum(fees[at]) if at is not None and len(at) else 0.0
        decision = o.get("decision_price")
        decision = float(decision) if decision is not None and not pd.isna(decision) else None
        bar = bars.get(str(o["security_id"]))
        arrival = bar.open if bar else None
        vwap = bar.vwap_or_proxy if bar else None
        close = bar.close if bar else None
        method = None
        if bar is not None:
            method = "vendor" if bar.vwap is not None else "typical_price"
        exec_cost = s * filled * (avg - decision) if avg is not None and decision else 0.0
        delay = s * filled * (arrival - decision) if arrival and decision and filled else None
        impact = s * filled * (avg - arrival) if avg is not None and arrival else None
        if filled == 0:
            delay, impact = 0.0, 0.0
        opp = (
            s * (ordered - filled) * (close - decision)
            if close is not None and decision is not None
            else None
        )
        rows.append(
            {
                "client_order_id": cid,
                "portfolio_id": o["portfolio_id"],
                "security_id": o["security_id"],
                "side": o["side"],
                "ordered_quantity": ordered,
                "filled_quantity": filled,
                "fill_rate": filled / ordered if ordered else None,
                "avg_fill_price": avg,
                "decision_price": decision,
                "arrival_price": arrival,
                "vwap": vwap,
                "vwap_method": method,
                "close": close,
                "shortfall_decision_bps": _bps(s, avg, decision),
                "shortfall_arrival_bps": _bps(s, avg, arrival),
                "shortfall_vwap_bps": _bps(s, avg, vwap),
                "execution_cost": exec_cost,
                "delay_cost": delay,
                "impact_cost": impact,
                "opportunity_cost": opp,
                "commission": commission,
                "total_shortfall": exec_cost + (opp or 0.0) + commission,
            }
        )
    return pd.DataFrame(rows, columns=TCA_COLUMNS)


def run_tca(
    lake: Store,
    portfolio_id: str,
    trade_date: dt.date,
    prices: PriceSource,
    *,
    clock: Callable[[], dt.datetime] = now_utc,
    orders: pd.DataFrame | None = None,
    fills: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Compute TCA from the lake's ``orders`` and ``fills`` and append it to ``tca``.

    ``orders``/``fills``: the day's rows of the portfolio exactly as
    :func:`~pipelines.execution.records.read_day` gives them now, when the caller has
    just read them (default: read here). Re-running with the same inputs adds nothing;
    late fills produce a new version.
    """
    if orders is None:
        orders = read_day(lake, "orders", trade_date, portfolio_id)
    if fills is None:
        fills = read_day(lake, "fills", trade_date, portfolio_id)
    frame = compute_tca(orders, fills, prices, trade_date)
    if frame.empty:
        return frame
    stored = read_day(lake, "tca", trade_date, portfolio_id)
    if not stored.empty:
        cols = ["client_order_id", "filled_quantity", "avg_fill_price", "arrival_price", "vwap"]
        old = {tuple(map(str, r)) for r in stored[cols].to_numpy().tolist()}
        frame_new = frame[[tuple(map(str, r)) not in old for r in frame[cols].to_numpy().tolist()]]
    else:
        frame_new = frame
    if not frame_new.empty:
        out = frame_new.copy()
        out["valid_date"] = trade_date
        out["known_at"] = pd.Timestamp(clock())
        bid = f"tca:{trade_date.isoformat()}:{short_hash(out[TCA_COLUMNS].to_json(), n=32)}"
        spec = get_table("tca")
        lake.write("tca", out[[f.name for f in spec.input_fields]], batch_id=bid)
    return frame


__all__ = ["TCA_COLUMNS", "compute_tca", "run_tca"]
