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
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.execution.prices import PriceSource
from pipelines.execution.records import now_utc, read_day, records_table, short_hash
from pipelines.lake import get_table
from pipelines.lake.interface import Store
from pipelines.timeline import LATEST

TCA_COLUMNS = [f.name for f in get_table("tca").fields]


def _bps(s: float, price: float | None, bench: float | None) -> float | None:
    if price is None or bench is None or not (bench > 0) or math.isnan(price):
        return None
    return s * (price / bench - 1.0) * 1e4


def _nansum(values: np.ndarray) -> float:
    """``pd.Series(values).sum()``: the sum with NaN taken as 0 (pandas' own rule)."""
    return float(np.where(np.isnan(values), 0.0, values).sum())


def _sum_at(values: list[float], array: np.ndarray, at: list[int]) -> float:
    """:func:`_nansum` of ``array[at]`` (``values``: ``array`` as Python floats). Fewer than
    8 values are summed in Python as numpy sums them — one after the other onto 0.0 (its
    pairwise sum starts 8 partial sums from 8 values on) — NaN taken as 0: an order has a
    few fills, and numpy's calls cost more than the sum."""
    if len(at) < 8:
        total = 0.0
        for i in at:
            v = values[i]
            total += 0.0 if v != v else v
        return total
    return _nansum(array[at])


def _price(value: Any) -> float | None:
    """A decision price as a float, or None when missing (None, NaN, pandas' NA)."""
    if value is None:
        return None
    if type(value) is float:
        return None if value != value else value
    return None if pd.isna(value) else float(value)


def _floats(data: pd.DataFrame | pa.Table, name: str) -> np.ndarray:
    """Float column ``name`` as a numpy array (a null as NaN, as pandas reads it)."""
    if isinstance(data, pa.Table):
        return np.asarray(data.column(name).to_numpy(zero_copy_only=False), dtype=float)
    return data[name].to_numpy(dtype=float)


def _fill_groups(fills: pd.DataFrame | pa.Table) -> dict[str, list[int]]:
    """Each order's fills (positions in the fills' row order) by client order id; a fill
    without an id belongs to none (pandas' groupby drops a missing key)."""
    if isinstance(fills, pd.DataFrame):
        groups = fills.groupby("client_order_id", sort=False).indices
        return {str(k): np.asarray(v).tolist() for k, v in groups.items()}
    by_order: dict[str, list[int]] = {}
    for i, cid in enumerate(fills.column("client_order_id").to_pylist()):
        if cid is not None:
            by_order.setdefault(str(cid), []).append(i)
    return by_order


_ORDER_COLUMNS = ("client_order_id", "portfolio_id", "security_id", "side", "quantity")


def _accepted(orders: pd.DataFrame | pa.Table) -> dict[str, list[Any]]:
    """The accepted orders' columns (:data:`_ORDER_COLUMNS` and ``decision_price``, None
    when the orders have none) as Python values, in the orders' row order: what
    ``orders[orders["status"] == "accepted"][c].tolist()`` gives, without the frame."""
    if isinstance(orders, pa.Table):
        accepted = orders.filter(pc.equal(orders.column("status"), "accepted"))
        cols = {c: accepted.column(c).to_pylist() for c in _ORDER_COLUMNS}
        n = accepted.num_rows
        has_decision = "decision_price" in accepted.column_names
        cols["decision_price"] = (
            accepted.column("decision_price").to_pylist() if has_decision else [None] * n
        )
        return cols
    keep = np.flatnonzero(orders["status"].to_numpy() == "accepted")
    cols = {c: orders[c].to_numpy()[keep].tolist() for c in _ORDER_COLUMNS}
    cols["decision_price"] = (
        orders["decision_price"].to_numpy()[keep].tolist()
        if "decision_price" in orders
        else [None] * len(keep)
    )
    return cols


def _tca_records(
    orders: pd.DataFrame | pa.Table,
    fills: pd.DataFrame | pa.Table,
    prices: PriceSource,
    trade_date: dt.date,
) -> list[dict[str, Any]]:
    """One ``tca`` record (:data:`TCA_COLUMNS`) per accepted order (:func:`compute_tca`)."""
    cols = _accepted(orders)
    bars = prices.session(trade_date, sorted(set(map(str, cols["security_id"]))))
    # Each order's fills, in the fills' row order (what a boolean mask per order selects),
    # found by one grouping instead of a scan of every fill per order.
    by_order = _fill_groups(fills)
    # The sums pandas takes of each order's fills (NaN skipped: numpy's sum of the values
    # with NaN as 0, over the same values in the same order, so the same floats), on numpy
    # arrays instead of a pandas selection per order.
    quantity = _floats(fills, "quantity")
    notional = quantity * _floats(fills, "price")
    fees = _floats(fills, "commission")
    q_values, n_values, f_values = quantity.tolist(), notional.tolist(), fees.tolist()
    rows = []
    for cid_, pid, sid, side, qty, decision_ in zip(
        cols["client_order_id"],
        cols["portfolio_id"],
        cols["security_id"],
        cols["side"],
        cols["quantity"],
        cols["decision_price"],
        strict=True,
    ):
        cid = str(cid_)
        at = by_order.get(cid)
        s = 1.0 if side == "buy" else -1.0
        ordered = float(qty)
        filled = _sum_at(q_values, quantity, at) if at else 0.0
        avg = _sum_at(n_values, notional, at) / filled if at and filled > 0 else None
        commission = _sum_at(f_values, fees, at) if at else 0.0
        decision = _price(decision_)
        bar = bars.get(str(sid))
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
                "portfolio_id": pid,
                "security_id": sid,
                "side": side,
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
    return rows


def _tca_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """``pd.DataFrame(rows, columns=TCA_COLUMNS)``, built column by column (the same
    frame, dtypes included, for a fraction of the cost)."""
    if not rows:
        return pd.DataFrame(rows, columns=TCA_COLUMNS)
    return pd.DataFrame({c: [r[c] for r in rows] for c in TCA_COLUMNS}, columns=TCA_COLUMNS)


def compute_tca(
    orders: pd.DataFrame | pa.Table,
    fills: pd.DataFrame | pa.Table,
    prices: PriceSource,
    trade_date: dt.date,
) -> pd.DataFrame:
    """TCA rows (``tca`` columns) for the accepted ``orders`` given their ``fills``.

    Either may be a frame or an Arrow table of the table's rows (as the lake answers
    them: the frame :func:`~pipelines.execution.records.read_day` gives of it yields the
    same rows)."""
    return _tca_frame(_tca_records(orders, fills, prices, trade_date))


def run_tca(
    lake: Store,
    portfolio_id: str,
    trade_date: dt.date,
    prices: PriceSource,
    *,
    clock: Callable[[], dt.datetime] = now_utc,
    orders: pd.DataFrame | pa.Table | None = None,
    fills: pd.DataFrame | pa.Table | None = None,
) -> pd.DataFrame:
    """Compute TCA from the lake's ``orders`` and ``fills`` and append it to ``tca``.

    ``orders``/``fills``: the day's rows of the portfolio exactly as the lake answers them
    now (Arrow) or as :func:`~pipelines.execution.records.read_day` gives them, when the
    caller has just read them (default: read here). Re-running with the same inputs adds
    nothing; late fills produce a new version.
    """
    if orders is None:
        orders = read_day(lake, "orders", trade_date, portfolio_id)
    if fills is None:
        fills = read_day(lake, "fills", trade_date, portfolio_id)
    rows = _tca_records(orders, fills, prices, trade_date)
    frame = _tca_frame(rows)
    if frame.empty:
        return frame
    mine = pc.field("portfolio_id") == pa.scalar(portfolio_id, pa.string())
    if lake.as_of("tca", known_at=LATEST, valid_at=trade_date, filter=mine).num_rows:
        # A re-run: only rows whose fills or prices changed are new (read_day's frame of
        # the answer just read).
        stored = read_day(lake, "tca", trade_date, portfolio_id)
        cols = ["client_order_id", "filled_quantity", "avg_fill_price", "arrival_price", "vwap"]
        old = {tuple(map(str, r)) for r in stored[cols].to_numpy().tolist()}
        new = [tuple(map(str, r)) not in old for r in frame[cols].to_numpy().tolist()]
        frame_new = frame[new]
        rows = [r for r, keep in zip(rows, new, strict=True) if keep]
    else:
        frame_new = frame
    if frame_new.empty:
        return frame
    now = clock()
    # The batch id hashes the new rows' JSON (their TCA columns, with their labels).
    bid = f"tca:{trade_date.isoformat()}:{short_hash(frame_new.to_json(), n=32)}"
    spec = get_table("tca")
    tbl = records_table(spec, rows) if now.tzinfo is not None else None
    if tbl is not None:
        # The rows as the frame converts (records_table: the same values, straight to Arrow).
        lake.write("tca", tbl, known_at=now, valid_date=trade_date, batch_id=bid)
        return frame
    out = frame_new.copy()
    out["valid_date"] = trade_date
    out["known_at"] = pd.Timestamp(now)
    lake.write("tca", out[[f.name for f in spec.input_fields]], batch_id=bid)
    return frame


__all__ = ["TCA_COLUMNS", "compute_tca", "run_tca"]
