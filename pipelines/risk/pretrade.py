"""Pre-trade risk checks, run on every order before it leaves (spirit of SEC Rule 15c3-5).

Each order is checked against every rule below; any failure rejects it. Every check —
passed or failed — produces an audit row (timestamp, order key, rule, passed, value,
limit, reason) for an append-only audit table. Orders are evaluated in the given
sequence; only *accepted* orders update the running post-trade book, so post-trade
limits see the book as it would be if the accepted orders fill.

Rules (``rule`` column, units):

* ``kill_switch``        — config flag ``kill_switch: true``, or the central kill switch
                           (:mod:`pipelines.risk.kill_switch`, in the lake) is engaged or
                           its state cannot be read (fail closed): block everything.
* ``valid_order``        — side buy/sell, quantity > 0, reference price > 0.
* ``restricted_list``    — security on the restricted list.
* ``max_order_notional`` — quantity × price (currency) ≤ limit.
* ``max_order_shares``   — quantity (shares) ≤ limit.
* ``max_adv_pct``        — quantity / ADV (shares/day) ≤ limit (fraction).
* ``price_collar``       — |price / last_close − 1| ≤ limit, price = limit price if given
                           else reference price (last_close defaults to reference price).
* ``max_gross_exposure`` — post-trade Σ|position notional| / NAV ≤ limit.
* ``net_exposure``       — post-trade Σ position notional / NAV within [lo, hi].
* ``sector_exposure``    — post-trade |net sector notional| / NAV ≤ limit (per sector).
* ``daily_loss_limit``   — if today's P&L ≤ −limit × NAV, only risk-reducing orders pass.

Exposure rules (gross, net, sector) never reject an order that *reduces* the measured
exposure, so the desk can always de-risk.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field

from pipelines.lake.interface import Store
from pipelines.risk.kill_switch import blocking_reason

LIMITS_DIR = Path(__file__).with_name("limits")

AUDIT_COLUMNS = (
    "timestamp",
    "client_order_id",
    "portfolio_id",
    "security_id",
    "rule",
    "passed",
    "value",
    "limit",
    "reason",
)


@dataclass(frozen=True)
class Order:
    """An outgoing order. ``quantity`` is unsigned shares; ``side`` gives the sign.

    reference_price — current reference (arrival/last) price, currency per share.
    last_close      — previous close for the price collar (defaults to reference_price).
    adv             — average daily volume in *shares*.
    """

    client_order_id: str
    portfolio_id: str
    trade_date: date
    security_id: str
    side: Literal["buy", "sell"]
    quantity: float
    reference_price: float
    adv: float
    sector: str | None = None
    limit_price: float | None = None
    last_close: float | None = None
    order_type: str = "limit"

    @property
    def signed_quantity(self) -> float:
        return self.quantity if self.side == "buy" else -self.quantity

    @property
    def price(self) -> float:
        """Price used for notional and collar: the limit price if any, else reference."""
        return self.limit_price if self.limit_price is not None else self.reference_price

    @property
    def notional(self) -> float:
        return abs(self.quantity) * self.price


class Band(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    lo: float
    hi: float


class RiskLimits(BaseModel):
    """Limits from YAML (``pipelines/risk/limits/default.yaml``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kill_switch: bool = False
    max_order_notional: float = Field(gt=0)
    max_order_shares: float = Field(gt=0)
    max_adv_pct: float = Field(gt=0)
    price_collar_pct: float = Field(gt=0)
    max_gross_exposure: float = Field(gt=0)
    net_exposure: Band
    max_sector_exposure: float = Field(gt=0)
    sector_overrides: dict[str, float] = Field(default_factory=dict)
    daily_loss_limit_pct: float = Field(gt=0)
    restricted: list[str] = Field(default_factory=list)


def load_limits(name_or_path: str | Path = "default") -> RiskLimits:
    """Load limits by shipped name or YAML path."""
    p = Path(name_or_path)
    if not p.suffix:
        p = LIMITS_DIR / f"{name_or_path}.yaml"
    with p.open() as fh:
        return RiskLimits.model_validate(yaml.safe_load(fh))


@dataclass(frozen=True)
class BookState:
    """Current book for one portfolio: positions in shares, marks, sectors, NAV, P&L."""

    nav: float
    positions: Mapping[str, float] = field(default_factory=dict)
    prices: Mapping[str, float] = field(default_factory=dict)
    sectors: Mapping[str, str] = field(default_factory=dict)
    daily_pnl: float = 0.0
    restricted: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Breach:
    rule: str
    reason: str


@dataclass(frozen=True)
class PreTradeResult:
    accepted: list[Order]
    rejected: list[tuple[Order, list[Breach]]]
    audit: pd.DataFrame

    def rejected_rules(self, client_order_id: str) -> list[str]:
        for o, b in self.rejected:
            if o.client_order_id == client_order_id:
                return [x.rule for x in b]
        return []


class _Book:
    """Mutable running book (notional by security) used while checking a batch."""

    def __init__(self, state: BookState) -> None:
        self.nav = state.nav
        self.notional: dict[str, float] = {
            s: q * float(state.prices.get(s, 0.0)) for s, q in state.positions.items()
        }
        self.sectors: dict[str, str] = dict(state.sectors)

    def gross(self, extra: Mapping[str, float] | None = None) -> float:
        n = self._with(extra)
        return sum(abs(v) for v in n.values()) / self.nav

    def net(self, extra: Mapping[str, float] | None = None) -> float:
        return sum(self._with(extra).values()) / self.nav

    def sector(self, sector: str, extra: Mapping[str, float] | None = None) -> float:
        n = self._with(extra)
        return sum(v for s, v in n.items() if self.sectors.get(s) == sector) / self.nav

    def _with(self, extra: Mapping[str, float] | None) -> dict[str, float]:
        if not extra:
            return self.notional
        n = dict(self.notional)
        for s, v in extra.items():
            n[s] = n.get(s, 0.0) + v
        return n


def kill_switch_active(limits: RiskLimits, store: Store | None = None) -> str | None:
    """Reason string if nothing may be sent, else None: the limits' flag, or — given the
    lake ``store`` — the central kill switch engaged or its state unreadable."""
    if limits.kill_switch:
        return "kill switch engaged by configuration flag"
    if store is not None:
        return blocking_reason(store)
    return None


def check_orders(
    orders: Sequence[Order] | Iterable[Order],
    limits: RiskLimits,
    book: BookState,
    now: datetime | None = None,
    store: Store | None = None,
) -> PreTradeResult:
    """Run every rule on every order; return accepted / rejected orders and audit rows.

    ``store`` is the lake holding the central kill switch (read once for the batch)."""
    ts = now or datetime.now(UTC)
    kill = kill_switch_active(limits, store)
    running = _Book(book)
    restricted = set(limits.restricted) | set(book.restricted)
    loss_hit = book.daily_pnl <= -limits.daily_loss_limit_pct * book.nav
    audit: list[dict[str, object]] = []
    accepted: list[Order] = []
    rejected: list[tuple[Order, list[Breach]]] = []

    for order in orders:
        breaches: list[Breach] = []

        def record(rule: str, passed: bool, value: float, limit: float, reason: str) -> None:
            audit.append(
                {
                    "timestamp": ts,
                    "client_order_id": order.client_order_id,  # noqa: B023
                    "portfolio_id": order.portfolio_id,  # noqa: B023
                    "security_id": order.security_id,  # noqa: B023
                    "rule": rule,
                    "passed": passed,
                    "value": float(value),
                    "limit": float(limit),
                    "reason": "" if passed else reason,
                }
            )
            if not passed:
                breaches.append(Breach(rule, reason))  # noqa: B023

        record("kill_switch", kill is None, float(kill is not None), 0.0, kill or "")

        valid = (
            order.side in ("buy", "sell")
            and math.isfinite(order.quantity)
            and order.quantity > 0
            and math.isfinite(order.reference_price)
            and order.reference_price > 0
            and (order.limit_price is None or order.limit_price > 0)
        )
        record(
            "valid_order",
            valid,
            order.quantity,
            0.0,
            f"invalid order: side={order.side} qty={order.quantity} "
            f"ref={order.reference_price} limit={order.limit_price}",
        )
        if not valid:
            rejected.append((order, breaches))
            continue

        is_restricted = order.security_id in restricted
        record(
            "restricted_list",
            not is_restricted,
            float(is_restricted),
            0.0,
            f"{order.security_id} is on the restricted list",
        )
        record(
            "max_order_notional",
            order.notional <= limits.max_order_notional,
            order.notional,
            limits.max_order_notional,
            f"order notional {order.notional:,.0f} exceeds {limits.max_order_notional:,.0f}",
        )
        record(
            "max_order_shares",
            order.quantity <= limits.max_order_shares,
            order.quantity,
            limits.max_order_shares,
            f"order quantity {order.quantity:,.0f} exceeds {limits.max_order_shares:,.0f} shares",
        )
        adv_pct = order.quantity / order.adv if order.adv > 0 else math.inf
        record(
            "max_adv_pct",
            adv_pct <= limits.max_adv_pct,
            adv_pct,
            limits.max_adv_pct,
            f"order is {adv_pct:.1%} of ADV ({order.adv:,.0f} sh), limit {limits.max_adv_pct:.1%}",
        )
        close = order.last_close if order.last_close is not None else order.reference_price
        dev = abs(order.price / close - 1.0) if close > 0 else math.inf
        record(
            "price_collar",
            dev <= limits.price_collar_pct,
            dev,
            limits.price_collar_pct,
            f"price {order.price:.4f} is {dev:.1%} from last close {close:.4f} "
            f"(collar {limits.price_collar_pct:.1%})",
        )

        delta = {order.security_id: order.signed_quantity * order.price}
        g0, g1 = running.gross(), running.gross(delta)
        record(
            "max_gross_exposure",
            g1 <= limits.max_gross_exposure or g1 <= g0,
            g1,
            limits.max_gross_exposure,
            f"post-trade gross {g1:.3f}×NAV exceeds {limits.max_gross_exposure:.3f}",
        )
        n0, n1 = running.net(), running.net(delta)
        band = limits.net_exposure
        inside = band.lo <= n1 <= band.hi
        reduces = abs(n1 - _clip(n1, band.lo, band.hi)) < abs(n0 - _clip(n0, band.lo, band.hi))
        record(
            "net_exposure",
            inside or reduces,
            n1,
            band.hi if n1 > band.hi else band.lo,
            f"post-trade net {n1:+.3f}×NAV outside [{band.lo:+.3f}, {band.hi:+.3f}]",
        )
        sector = order.sector or book.sectors.get(order.security_id)
        if sector is not None:
            running.sectors.setdefault(order.security_id, sector)
            lim = limits.sector_overrides.get(sector, limits.max_sector_exposure)
            s0, s1 = running.sector(sector), running.sector(sector, delta)
            record(
                "sector_exposure",
                abs(s1) <= lim or abs(s1) <= abs(s0),
                s1,
                lim,
                f"post-trade {sector} exposure {s1:+.3f}×NAV exceeds ±{lim:.3f}",
            )
        risk_reducing = g1 < g0
        record(
            "daily_loss_limit",
            (not loss_hit) or risk_reducing,
            book.daily_pnl / book.nav,
            -limits.daily_loss_limit_pct,
            f"daily loss {book.daily_pnl:,.0f} breached −{limits.daily_loss_limit_pct:.1%} of "
            "NAV; only risk-reducing orders allowed",
        )

        if breaches:
            rejected.append((order, breaches))
        else:
            accepted.append(order)
            sid = order.security_id
            running.notional[sid] = running.notional.get(sid, 0.0) + delta[sid]

    frame = pd.DataFrame(audit, columns=list(AUDIT_COLUMNS))
    return PreTradeResult(accepted=accepted, rejected=rejected, audit=frame)


def _clip(x: float, lo: float, hi: float) -> float:
    return min(max(x, lo), hi)


def with_kill_switch(limits: RiskLimits, engaged: bool = True) -> RiskLimits:
    """Copy of ``limits`` with the kill-switch flag set (for operators / tests)."""
    return limits.model_copy(update={"kill_switch": engaged})


__all__ = [
    "AUDIT_COLUMNS",
    "BookState",
    "Breach",
    "Order",
    "PreTradeResult",
    "RiskLimits",
    "check_orders",
    "kill_switch_active",
    "load_limits",
    "with_kill_switch",
]
