"""TCA from the lake's Arrow answers, written straight to Arrow: the same frame, rows and
batch id as the pandas form it replaced (kept below as the reference), bit for bit."""

from __future__ import annotations

import datetime as dt
import math
import random
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pipelines.execution.prices import PriceSource, SessionBar, StaticPriceSource
from pipelines.execution.records import short_hash
from pipelines.execution.tca import TCA_COLUMNS, _bps, _nansum, _sum_at, compute_tca, run_tca
from pipelines.lake import get_table
from tests.execution.capture_store import CaptureStore

pytestmark = pytest.mark.unit

DAY = dt.date(2024, 3, 5)
PF = "P1"


def _reference_tca(
    orders: pd.DataFrame, fills: pd.DataFrame, prices: PriceSource, trade_date: dt.date
) -> pd.DataFrame:
    """compute_tca as it was (pandas selections, numpy sums per order)."""
    accepted = orders[orders["status"] == "accepted"]
    bars = prices.session(trade_date, sorted(set(accepted["security_id"].astype(str))))
    rows = []
    by_order = {str(k): v for k, v in fills.groupby("client_order_id", sort=False).indices.items()}
    quantity = fills["quantity"].to_numpy(dtype=float)
    notional = quantity * fills["price"].to_numpy(dtype=float)
    fees = fills["commission"].to_numpy(dtype=float)
    n = len(accepted)
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


def _reference_write(
    store: CaptureStore, frame: pd.DataFrame, now: dt.datetime, trade_date: dt.date
) -> None:
    """run_tca's write as it was (nothing stored yet): the frame, the columns added."""
    out = frame.copy()
    out["valid_date"] = trade_date
    out["known_at"] = pd.Timestamp(now)
    bid = f"tca:{trade_date.isoformat()}:{short_hash(out[TCA_COLUMNS].to_json(), n=32)}"
    store.write("tca", out[[f.name for f in get_table("tca").input_fields]], batch_id=bid)


def _market(gen: random.Random) -> tuple[pa.Table, pa.Table, StaticPriceSource]:
    """Random orders, fills (0..9 per order, some amounts NaN or null) and bars."""
    prices = [None, 0.0, -0.0, 1.0, 12.5, 1e-9, 3e7, 99.99]
    orders: list[dict[str, object]] = []
    fills: list[dict[str, object]] = []
    bars: dict[str, SessionBar] = {}
    for i in range(gen.randint(0, 12)):
        sid = f"S{gen.randint(0, 6)}"
        cid = f"C{i}"
        orders.append(
            {
                "client_order_id": cid,
                "portfolio_id": PF,
                "security_id": sid,
                "side": gen.choice(["buy", "sell"]),
                "quantity": gen.choice([0.0, 1.0, 100.0, 2500.0]),
                "decision_price": gen.choice(prices),
                "status": gen.choice(["accepted", "accepted", "rejected"]),
            }
        )
        for j in range(gen.choice([0, 1, 1, 2, 3, 7, 8, 9])):
            fills.append(
                {
                    "client_order_id": cid,
                    "fill_id": f"{cid}-{j}",
                    "quantity": gen.choice([1.0, 3.0, 0.5, 1e5, -0.0, math.nan]),
                    "price": gen.uniform(1.0, 500.0),
                    "commission": gen.choice([None, 0.0, 1.25, math.nan, 1e-3]),
                }
            )
        o = gen.uniform(1.0, 200.0)
        bars[sid] = SessionBar(
            open=o,
            high=o * 1.02,
            low=o * 0.97,
            close=o * gen.uniform(0.95, 1.05),
            volume=1e6,
            vwap=gen.choice([None, o * 1.001]),
        )
    gen.shuffle(fills)
    order_schema = pa.schema(
        [
            ("client_order_id", pa.string()),
            ("portfolio_id", pa.string()),
            ("security_id", pa.string()),
            ("side", pa.string()),
            ("quantity", pa.float64()),
            ("decision_price", pa.float64()),
            ("status", pa.string()),
        ]
    )
    fill_schema = pa.schema(
        [
            ("client_order_id", pa.string()),
            ("fill_id", pa.string()),
            ("quantity", pa.float64()),
            ("price", pa.float64()),
            ("commission", pa.float64()),
        ]
    )
    return (
        pa.Table.from_pylist(orders, order_schema),
        pa.Table.from_pylist(fills, fill_schema),
        StaticPriceSource({DAY: bars}),
    )


def test_sums_of_a_few_values_are_numpys() -> None:
    gen = np.random.default_rng(5)
    for n in range(1, 12):
        for _ in range(400):
            values = gen.standard_normal(n) * 10.0 ** gen.integers(-8, 9, n)
            values[gen.random(n) < 0.15] = -0.0
            values[gen.random(n) < 0.15] = np.nan
            at = gen.permutation(n)[: gen.integers(1, n + 1)].tolist()
            want = _nansum(values[at])
            got = _sum_at(values.tolist(), values, at)
            assert got == want and math.copysign(1.0, got) == math.copysign(1.0, want)


def test_tca_of_arrow_rows_is_the_frame_tca() -> None:
    gen = random.Random(11)
    for _ in range(60):
        orders, fills, prices = _market(gen)
        want = _reference_tca(orders.to_pandas(), fills.to_pandas(), prices, DAY)
        for o, f in [(orders, fills), (orders.to_pandas(), fills.to_pandas())]:
            got = compute_tca(o, f, prices, DAY)
            pd.testing.assert_frame_equal(got, want, check_exact=True)
            assert got.to_json() == want.to_json()


def test_run_tca_stores_the_rows_and_batch_of_the_frame_write() -> None:
    gen = random.Random(12)
    now = dt.datetime(2024, 3, 5, 22, 0, tzinfo=dt.UTC)
    written = 0
    for _ in range(40):
        orders, fills, prices = _market(gen)
        got, want = CaptureStore(), CaptureStore()
        frame = run_tca(got, PF, DAY, prices, clock=lambda: now, orders=orders, fills=fills)  # type: ignore[arg-type]
        reference = _reference_tca(orders.to_pandas(), fills.to_pandas(), prices, DAY)
        pd.testing.assert_frame_equal(frame, reference, check_exact=True)
        if not reference.empty:
            _reference_write(want, reference, now, DAY)
        assert [(n, b) for n, b, _ in got.writes] == [(n, b) for n, b, _ in want.writes]
        for (_, _, a), (_, _, b) in zip(got.writes, want.writes, strict=True):
            assert a.equals(b)
        written += len(got.writes)
    assert written > 20
