"""Order generation: targets − current positions, netted, lot-rounded, pre-trade checked,
persisted to the ``orders`` table before anything is sent.

Rules:

* **Netting.** Target rows are summed per security (several sleeves may target the same
  name); one order per security and day. With ``liquidate_missing`` (default) a held
  security absent from the targets is targeted at zero — a target portfolio is complete.
* **Lot rounding.** ``trade = lot · round((target − current) / lot)``, except that a target
  of zero closes the whole position (odd lots included) so exits leave no dust.
* **Client order id** = ``"AF"`` + 18 hex digits of sha256(portfolio, trade date,
  security): the same order on a retried task or a re-run day has the same id, and the
  broker treats a second submit as the same order.
* **Source of truth.** All of a day's orders are written to ``orders`` in one commit with
  their pre-trade verdict; execution then sends only rows with ``status = accepted``.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from pipelines.execution.broker import (
    Algo,
    AlgoInstruction,
    BrokerOrder,
    NoTargetsError,
    Side,
    TargetsError,
)
from pipelines.execution.records import append_new, read_day, short_hash, to_json
from pipelines.lake import Lake
from pipelines.lake.interface import Store
from pipelines.portfolio.targets import TargetPortfolio
from pipelines.risk.pretrade import BookState, Order, PreTradeResult, RiskLimits, check_orders


def opt_float(value: Any) -> float | None:
    """``value`` as a float, or None for None/NaN/unparseable."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def client_order_id(portfolio_id: str, trade_date: dt.date, security_id: str) -> str:
    """Deterministic client order id for (portfolio, trade date, security) — 20 chars,
    valid as a FIX ClOrdID."""
    return "AF" + short_hash(portfolio_id, trade_date.isoformat(), security_id, n=18)


@dataclass(frozen=True)
class ProposedOrder:
    """An order derived from targets, before the pre-trade verdict."""

    client_order_id: str
    portfolio_id: str
    trade_date: dt.date
    security_id: str
    side: Side
    quantity: float
    decision_price: float
    target_shares: float
    current_shares: float
    adv: float
    sector: str | None = None
    order_type: Literal["market", "limit"] = "market"
    limit_price: float | None = None
    algo: AlgoInstruction = field(default_factory=AlgoInstruction)

    def pretrade(self) -> Order:
        """The :class:`~pipelines.risk.pretrade.Order` the risk checks see."""
        return Order(
            client_order_id=self.client_order_id,
            portfolio_id=self.portfolio_id,
            trade_date=self.trade_date,
            security_id=self.security_id,
            side=self.side,
            quantity=self.quantity,
            reference_price=self.decision_price,
            adv=self.adv,
            sector=self.sector,
            limit_price=self.limit_price,
            last_close=self.decision_price,
            order_type=self.order_type,
        )


def targets_frame(targets: TargetPortfolio | pd.DataFrame) -> pd.DataFrame:
    """Targets as a frame with at least ``security_id``, ``target_shares``, ``price``."""
    frame = targets.to_frame() if isinstance(targets, TargetPortfolio) else targets.copy()
    missing = {"security_id", "target_shares", "price"} - set(frame.columns)
    if missing:
        raise TargetsError(f"targets lack columns {sorted(missing)}")
    return frame


TARGETS_TABLE = "target_portfolios"


def load_targets(
    lake: Lake,
    portfolio_id: str,
    date: dt.date,
    *,
    known_at: dt.datetime | None = None,
    table: str = TARGETS_TABLE,
) -> pd.DataFrame:
    """One portfolio's targets for ``date`` from the lake (``target_portfolios``), as the
    frame :func:`execute_day` takes: ``security_id``, ``target_shares``, ``price`` (plus
    whatever else the table carries, e.g. ``weight``).

    ``date`` is the table's valid date (the decision date the optimizer ran for);
    ``known_at`` (default: everything recorded) makes the read point in time. Raises
    ``LookupError`` naming the table, portfolio and date when there are no targets.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from pipelines.timeline import LATEST

    if lake.table(table) is None:
        raise NoTargetsError(f"table {table} does not exist yet (no targets were ever written)")
    data = lake.as_of(
        table,
        known_at=known_at or LATEST,
        valid_at=date,
        filter=pc.field("portfolio_id") == pa.scalar(portfolio_id, pa.string()),
    )
    frame = data.to_pandas()
    if "_deleted" in frame:
        frame = frame[~frame["_deleted"].astype(bool)]
    if frame.empty:
        raise NoTargetsError(f"{table}: no targets for portfolio {portfolio_id} on {date}")
    system = {"valid_date", "known_at", "_deleted", "_batch_id", "_ingested_at", "valid_year"}
    frame = frame[[c for c in frame.columns if c not in system]]
    return targets_frame(frame).sort_values("security_id").reset_index(drop=True)


def _net_targets(frame: pd.DataFrame) -> tuple[dict[str, float], dict[str, float]]:
    """Target shares (summed) and decision price (the last) per security.

    With one row per security (the optimizer's targets) and numeric columns, straight
    from the columns: the groupby's sum of one value is ``0.0 + value`` (NaN skipped, so
    0.0; a negative zero becomes +0.0) and its last price the value (NaN kept) — the
    groupby's floats without its cost (a tenth of an execution's order generation)."""
    ids, shares, prices = frame["security_id"], frame["target_shares"], frame["price"]
    numeric = all(
        pd.api.types.is_float_dtype(c) or pd.api.types.is_integer_dtype(c) for c in (shares, prices)
    )
    if numeric and ids.is_unique and not ids.isna().any():
        keys = [str(s) for s in ids.tolist()]
        target = {
            k: 0.0 + (float(q) if q == q else 0.0)
            for k, q in zip(keys, shares.tolist(), strict=True)
        }
        return target, {k: float(p) for k, p in zip(keys, prices.tolist(), strict=True)}
    grouped = frame.groupby("security_id", sort=True).agg(
        target_shares=("target_shares", "sum"), price=("price", "last")
    )
    target = {str(k): float(v) for k, v in grouped["target_shares"].items()}
    price = {str(k): float(v) for k, v in grouped["price"].items()}
    return target, price


def generate_orders(
    targets: TargetPortfolio | pd.DataFrame,
    current_positions: Mapping[str, float],
    portfolio_id: str,
    trade_date: dt.date,
    *,
    lot_size: int | Mapping[str, int] = 1,
    adv: Mapping[str, float] | None = None,
    sectors: Mapping[str, str] | None = None,
    algo: AlgoInstruction | None = None,
    order_type: Literal["market", "limit"] = "market",
    limit_band: float | None = None,
    liquidate_missing: bool = True,
    prices: Mapping[str, float] | None = None,
) -> list[ProposedOrder]:
    """One order per security whose lot-rounded trade is non-zero (see module doc).

    ``adv`` is average daily volume in shares (missing ⇒ NaN, which the pre-trade ADV rule
    rejects); for limit orders ``limit_band`` sets the limit at decision price × (1 ± band).
    ``prices`` (the book's marks) give the decision price of a security the targets do not
    price — a held name liquidated because it left the targets.
    Orders come back sorted by security id (a stable sending sequence).
    """
    frame = targets_frame(targets)
    target, price = _net_targets(frame)
    if liquidate_missing:
        for sid, q in current_positions.items():
            if sid not in target and abs(q) > 0:
                target[sid] = 0.0
    out: list[ProposedOrder] = []
    for sid in sorted(target):
        cur = float(current_positions.get(sid, 0.0))
        tgt = float(target[sid])
        lot = int(lot_size.get(sid, 1) if isinstance(lot_size, Mapping) else lot_size) or 1
        raw = tgt - cur
        trade = -cur if tgt == 0 else lot * round(raw / lot)
        if abs(trade) < 1e-9:
            continue
        side: Side = "buy" if trade > 0 else "sell"
        px = float(price.get(sid, math.nan))
        if not math.isfinite(px) and prices is not None:
            px = float(prices.get(sid, math.nan))
        limit = None
        if order_type == "limit" and limit_band is not None and math.isfinite(px):
            limit = round(px * (1 + limit_band if side == "buy" else 1 - limit_band), 4)
        out.append(
            ProposedOrder(
                client_order_id=client_order_id(portfolio_id, trade_date, sid),
                portfolio_id=portfolio_id,
                trade_date=trade_date,
                security_id=sid,
                side=side,
                quantity=float(abs(trade)),
                decision_price=px,
                target_shares=tgt,
                current_shares=cur,
                adv=float((adv or {}).get(sid, math.nan)),
                sector=(sectors or {}).get(sid),
                order_type=order_type,
                limit_price=limit,
                algo=algo or AlgoInstruction(),
            )
        )
    return out


def run_pretrade(
    orders: Sequence[ProposedOrder],
    limits: RiskLimits,
    book: BookState,
    *,
    now: dt.datetime | None = None,
    store: Store | None = None,
) -> PreTradeResult:
    """Every order through :func:`pipelines.risk.pretrade.check_orders`, in sequence
    (``store``: the lake holding the central kill switch)."""
    return check_orders([o.pretrade() for o in orders], limits, book, now=now, store=store)


def orders_frame(
    orders: Sequence[ProposedOrder], verdict: PreTradeResult, broker_name: str
) -> pd.DataFrame:
    """Rows for the ``orders`` table: each proposed order with its pre-trade verdict."""
    return pd.DataFrame(order_rows(orders, verdict, broker_name))


def order_rows(
    orders: Sequence[ProposedOrder], verdict: PreTradeResult, broker_name: str
) -> list[dict[str, Any]]:
    """:func:`orders_frame`'s rows as records (one dict per order, in order)."""
    rejected = {o.client_order_id: b for o, b in verdict.rejected}
    rows = []
    for o in orders:
        breaches = rejected.get(o.client_order_id, [])
        rows.append(
            {
                "client_order_id": o.client_order_id,
                "portfolio_id": o.portfolio_id,
                "security_id": o.security_id,
                "side": o.side,
                "quantity": o.quantity,
                "order_type": o.order_type,
                "limit_price": o.limit_price,
                "algo": o.algo.algo.value,
                "algo_params": to_json(o.algo.params()),
                "decision_price": o.decision_price,
                "adv": o.adv,
                "sector": o.sector,
                "target_shares": o.target_shares,
                "current_shares": o.current_shares,
                "status": "rejected" if breaches else "accepted",
                "reject_rules": to_json([b.rule for b in breaches]) if breaches else None,
                "reject_reason": "; ".join(b.reason for b in breaches) if breaches else None,
                "broker": broker_name,
                "valid_date": o.trade_date,
            }
        )
    return rows


def persist_orders(
    lake: Store, frame: pd.DataFrame, trade_date: dt.date, *, known_at: dt.datetime
) -> int:
    """Write a day's orders in one idempotent commit; returns rows written (0 if present)."""
    return append_new(lake, "orders", frame, trade_date, known_at=known_at)


def load_orders(lake: Store, portfolio_id: str, trade_date: dt.date) -> pd.DataFrame:
    """The ``orders`` rows of one portfolio and trade date (empty if none were generated)."""
    frame = read_day(lake, "orders", trade_date, portfolio_id)
    ids = frame["security_id"]
    if (
        isinstance(frame.index, pd.RangeIndex)
        and frame.index.start == 0
        and frame.index.step == 1
        and ids.is_monotonic_increasing
        and ids.is_unique
    ):
        return frame  # read_day's frame is the caller's own; sorting it changes nothing
    return frame.sort_values("security_id").reset_index(drop=True)


@functools.lru_cache(maxsize=256)
def _algo(name: str, params_json: str) -> AlgoInstruction:
    """The (immutable) algo instruction of an ``orders`` row's ``algo`` and
    ``algo_params``: a session's orders share a few, and each was parsed per order."""
    params = json.loads(params_json)
    part = params.get("participation")
    return AlgoInstruction(
        algo=Algo(name),
        start=params.get("start"),
        end=params.get("end"),
        participation=float(part) if part is not None else None,
        urgency=params.get("urgency"),
    )


def broker_order(row: Mapping[Any, Any], trade_date: dt.date) -> BrokerOrder:
    """The :class:`BrokerOrder` for one ``orders`` row (what is actually sent)."""
    algo = _algo(str(row.get("algo") or "none"), str(row.get("algo_params") or "{}"))
    limit_price = opt_float(row.get("limit_price"))
    side = str(row["side"])
    assert side in ("buy", "sell")
    return BrokerOrder(
        client_order_id=str(row["client_order_id"]),
        account=str(row["portfolio_id"]),
        trade_date=trade_date,
        security_id=str(row["security_id"]),
        side="buy" if side == "buy" else "sell",
        quantity=float(row["quantity"]),
        order_type="limit" if row.get("order_type") == "limit" else "market",
        limit_price=limit_price,
        algo=algo,
    )


__all__ = [
    "TARGETS_TABLE",
    "ProposedOrder",
    "broker_order",
    "client_order_id",
    "generate_orders",
    "load_orders",
    "load_targets",
    "order_rows",
    "orders_frame",
    "persist_orders",
    "run_pretrade",
    "targets_frame",
]
