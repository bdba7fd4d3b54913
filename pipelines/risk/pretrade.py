"""Pre-trade risk checks, run on every order before it leaves (spirit of SEC Rule 15c3-5).

Each order is checked against every rule below; any failure rejects it. Every check —
passed or failed — produces an audit row (timestamp, order key, rule, passed, value,
limit, reason) for an append-only audit table. Order rules judge each order alone;
exposure rules judge it against the batch's post-trade book — the book as it would be if
every order not rejected fills — so a rebalance whose end book is within every limit
passes whatever the sequence of its orders (see :func:`check_orders` for which orders a
breaching batch loses).

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
* ``sector_exposure``    — post-trade net sector notional / NAV within its band (per sector).
* ``<level>_exposure`` / ``<level>_gross`` / ``_long`` / ``_short`` — every other node of
                           the hierarchical limits (region, asset class, sector, security;
                           :mod:`pipelines.portfolio.limits_tree`): post-trade net, gross,
                           long or short notional of the node's members / NAV; the reason
                           names the node path (``portfolio/US/equity/Tech``).
* ``daily_loss_limit``   — if today's P&L ≤ −limit × NAV, only risk-reducing orders pass.

Exposure rules never reject an order that does not increase the measured excess over the
bound, so the desk can always de-risk, and judge a bound breached only beyond
:data:`~pipelines.portfolio.limits_tree.LIMIT_TOL` (5 bp of NAV: the optimizer meets the
exact limit, its answer audited to 1e-5, and whole-share rounding stays inside 5 bp). The exposure limits are one tree
(:meth:`RiskLimits.tree`): the flat keys are its portfolio node and its sector level, and
``hierarchy`` declares the rest; the optimizer enforces the same tree
(:func:`pipelines.risk.consistency.reconcile`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipelines.lake.interface import Store
from pipelines.portfolio.limits_tree import (
    KINDS,
    LIMIT_TOL,
    Band,
    LimitTree,
    NodeLimits,
    node_name,
    rule_name,
)
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


class RiskLimits(BaseModel):
    """Limits from YAML (``pipelines/risk/limits/default.yaml``).

    The exposure keys (``max_gross_exposure``, ``net_exposure``, ``max_sector_exposure``,
    ``sector_overrides``) are the flat form of the limit tree; ``hierarchy`` declares a
    deeper one (:class:`~pipelines.portfolio.limits_tree.LimitTree`). Both may be given:
    :meth:`tree` merges them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kill_switch: bool = False
    max_order_notional: float = Field(gt=0)
    max_order_shares: float = Field(gt=0)
    max_adv_pct: float = Field(gt=0)
    price_collar_pct: float = Field(gt=0)
    max_gross_exposure: float | None = Field(default=None, gt=0)
    net_exposure: Band | None = None
    max_sector_exposure: float | None = Field(default=None, gt=0)
    sector_overrides: dict[str, float] = Field(default_factory=dict)
    hierarchy: LimitTree | None = None
    daily_loss_limit_pct: float = Field(gt=0)
    restricted: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _flat_or_tree(self) -> RiskLimits:
        # Without a hierarchy the flat exposure keys are required, as they always were: a
        # key left out by mistake must not silently switch its check off.
        missing = [
            k
            for k in ("max_gross_exposure", "net_exposure", "max_sector_exposure")
            if getattr(self, k) is None
        ]
        if self.hierarchy is None and missing:
            raise ValueError(f"{', '.join(missing)} required (or declare a hierarchy)")
        self.tree()  # a flat key that contradicts the hierarchy's levels fails at load
        return self

    def tree(self) -> LimitTree:
        """The exposure limits as one tree: ``hierarchy`` (if any) with the flat keys as
        its portfolio node and sector level wherever it leaves them open; a flat file is
        the one-level tree ``levels: [sector]``. A bound declared twice keeps the
        hierarchy's."""
        base = self.hierarchy or LimitTree()
        portfolio = base.portfolio.over(
            NodeLimits(gross=self.max_gross_exposure, net=self.net_exposure)
        )
        levels = base.levels
        each = dict(base.each)
        nodes = dict(base.nodes)
        if self.max_sector_exposure is not None or self.sector_overrides:
            if "sector" not in levels:
                levels = (*levels, "sector")
            if self.max_sector_exposure is not None:
                lim = self.max_sector_exposure
                each["sector"] = each.get("sector", NodeLimits()).over(
                    NodeLimits(net=Band(lo=-lim, hi=lim))
                )
            if self.sector_overrides and levels != ("sector",):
                raise ValueError(
                    "sector_overrides name sectors of a one-level tree; with levels "
                    f"{list(levels)} declare hierarchy nodes by path instead"
                )
            for sector, lim in self.sector_overrides.items():
                nodes[sector] = nodes.get(sector, NodeLimits()).over(
                    NodeLimits(net=Band(lo=-lim, hi=lim))
                )
        return LimitTree(
            levels=levels,
            portfolio=portfolio,
            each=each,
            nodes=nodes,
            securities=dict(base.securities),
        )


# Parsed limits by file content: every session loads its limits (YAML parsing and
# validation cost more than the rest of a small batch's checks); the same bytes always
# give the same (frozen) limits, and an edited file has new bytes.
_PARSED: dict[bytes, RiskLimits] = {}
_PARSED_MAX = 64


def load_limits(name_or_path: str | Path = "default") -> RiskLimits:
    """Load limits by shipped name or YAML path (the file is read at every call; its
    content is parsed once per process)."""
    p = Path(name_or_path)
    if not p.suffix:
        p = LIMITS_DIR / f"{name_or_path}.yaml"
    content = p.read_bytes()
    limits = _PARSED.get(content)
    if limits is None:
        limits = RiskLimits.model_validate(yaml.safe_load(content))
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[content] = limits
    return limits


@dataclass(frozen=True)
class BookState:
    """Current book for one portfolio: positions in shares, marks, sectors, NAV, P&L."""

    nav: float
    positions: Mapping[str, float] = field(default_factory=dict)
    prices: Mapping[str, float] = field(default_factory=dict)
    sectors: Mapping[str, str] = field(default_factory=dict)
    daily_pnl: float = 0.0
    restricted: frozenset[str] = frozenset()
    # Further tree attributes by security (``region``, ``asset_class``); missing ⇒ the
    # level's single default node (pipelines.portfolio.limits_tree).
    attributes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Breach:
    rule: str
    reason: str


@dataclass(frozen=True)
class PreTradeResult:
    """The verdict on a batch: accepted and rejected orders, and one audit row per check
    (``records``: dicts with the :data:`AUDIT_COLUMNS`, in check order)."""

    accepted: list[Order]
    rejected: list[tuple[Order, list[Breach]]]
    records: list[dict[str, object]]

    @functools.cached_property
    def audit(self) -> pd.DataFrame:
        """The audit rows as a frame (built on first use: execution reads the records)."""
        return pd.DataFrame(self.records, columns=list(AUDIT_COLUMNS))

    def rejected_rules(self, client_order_id: str) -> list[str]:
        for o, b in self.rejected:
            if o.client_order_id == client_order_id:
                return [x.rule for x in b]
        return []


Chain = list[tuple[str, str, NodeLimits]]
_CHAINS_MAX = 100_000
# The limit tree of a RiskLimits and its securities' chains, by the limits object (kept
# alive here, so its id is not reused): a session checks its batch twice (preview and
# execution) and every session of a run checks against the same limits (load_limits
# gives one object per file content); both are functions of the frozen limits (and of a
# security's attributes).
_TREES: dict[int, tuple[RiskLimits, LimitTree, dict[object, Chain]]] = {}


def _tree_of(limits: RiskLimits) -> tuple[LimitTree, dict[object, Chain]]:
    hit = _TREES.get(id(limits))
    if hit is None or hit[0] is not limits:
        if len(_TREES) >= 32:
            _TREES.clear()
        hit = _TREES[id(limits)] = (limits, limits.tree(), {})
    return hit[1], hit[2]


class _Book:
    """Mutable book used while checking a batch: notional by security, its gross, and the
    gross/net/long/short sums (fractions of NAV) of every bounded node of the limit tree
    a held security belongs to."""

    def __init__(
        self, state: BookState, tree: LimitTree, chains: dict[object, Chain] | None = None
    ) -> None:
        self.nav = state.nav
        self.tree = tree
        self.notional: dict[str, float] = {}
        self.sectors: dict[str, str] = dict(state.sectors)
        self.attributes = state.attributes
        self.sums: dict[str, dict[str, float]] = {}
        self.gross = 0.0
        # chain() per (security, sector): the tree and the attributes are fixed, and a
        # batch asks for the same security's nodes at every move and check. ``chains``:
        # the tree's chains by security and attributes, shared by the batches checked
        # against the same limits.
        self._chains: dict[tuple[str, str | None], Chain] = {}
        self._shared = chains if chains is not None else {}
        if not self.nav > 0:
            for sid, q in state.positions.items():
                self.move(sid, q * float(state.prices.get(sid, 0.0)))
            return
        # move() from an empty book, inlined (it is the bulk of a batch's checks): from
        # zero, a move adds exactly the new exposure (x − 0.0 is x), to the same sums
        # in the same order.
        nav, gross, sums_of = self.nav, 0.0, self.sums
        for sid, q in state.positions.items():
            new = self.notional.get(sid, 0.0) + q * float(state.prices.get(sid, 0.0))
            if sid in self.notional:  # not from zero (a Mapping has no repeats; be safe)
                self.gross = gross
                self.move(sid, new - self.notional[sid])
                gross = self.gross
                continue
            self.notional[sid] = new
            gross += abs(new) / nav
            w = new / nav
            v = -w
            long = w if (w > 0.0 or w != w) else 0.0
            short = v if (v > 0.0 or v != v) else 0.0
            gw = abs(w)
            for name, _, _ in self.chain(sid):
                sums = sums_of.get(name)
                if sums is None:
                    sums = sums_of[name] = dict.fromkeys(KINDS, 0.0)
                sums["gross"] += gw
                sums["net"] += w
                sums["long"] += long
                sums["short"] += short
        self.gross = gross

    def chain(self, sid: str) -> Chain:
        """Bounded nodes of ``sid``: its group nodes, portfolio first, then itself."""
        key = (sid, self.sectors.get(sid))
        found = self._chains.get(key)
        if found is not None:
            return found
        if not self.attributes.get(sid):
            # No further attributes (the usual book): the shared key below, without
            # building and sorting them (a new book asks once per held security).
            shared_key = (sid, (("sector", key[1]),) if sid in self.sectors else ())
            found = self._shared.get(shared_key)
            if found is not None:
                self._chains[key] = found
                return found
        attrs: dict[str, object] = dict(self.attributes.get(sid, {}))
        if sid in self.sectors:
            attrs["sector"] = self.sectors[sid]
        try:
            shared: object = (sid, tuple(sorted(attrs.items())))
            out = self._shared.get(shared)
        except TypeError:  # an attribute value that cannot key a dict: not shared
            shared, out = None, None
        if out is None:
            out = list(self.tree.chain(attrs))
            own = self.tree.security_limits(sid)
            if not own.empty:
                out.append((node_name((*self.tree.path_of(attrs), sid)), "security", own))
            if shared is not None:
                if len(self._shared) >= _CHAINS_MAX:
                    self._shared.clear()
                self._shared[shared] = out
        self._chains[key] = out
        return out

    def node_sum(self, name: str, kind: str) -> float:
        return self.sums.get(name, {}).get(kind, 0.0)

    def move(self, sid: str, delta: float) -> None:
        """Add (or, negative, take back) a trade of ``delta`` notional in ``sid``."""
        old = self.notional.get(sid, 0.0)
        new = old + delta
        self.notional[sid] = new
        self.gross += (abs(new) - abs(old)) / self.nav
        # Each kind's change, the same for every node of the chain: computed once.
        w_new, w_old = new / self.nav, old / self.nav
        change = {kind: _exposure(kind, w_new) - _exposure(kind, w_old) for kind in KINDS}
        for name, _, _ in self.chain(sid):
            sums = self.sums.setdefault(name, dict.fromkeys(KINDS, 0.0))
            for kind in sums:
                sums[kind] += change[kind]


def _exposure(kind: str, w: float) -> float:
    """:func:`~pipelines.portfolio.limits_tree.exposure` of one weight, in Python floats
    (the same value, signed zeros and NaN included: ``np.maximum(a, 0.0)`` is ``a`` when
    ``a > 0`` or ``a`` is NaN, else ``+0.0``), without numpy's per-call cost: a batch's
    book moves thousands of times."""
    if kind == "net":
        return w
    if kind == "gross":
        return abs(w)
    if kind == "long":
        return w if (w > 0.0 or w != w) else 0.0
    v = -w
    return v if (v > 0.0 or v != v) else 0.0


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
    """Run every rule on every order; return accepted / rejected orders and audit rows
    (both in the given sequence).

    The order rules judge each order alone. The exposure rules and the daily loss limit
    judge it against the batch's post-trade book: the book as it would be if every order
    not rejected fills. A rule passes when that book is within the bound, or when the
    order does not increase the excess over it (the same book without the order). When
    the batch would breach a bound, orders are judged from the last to the first
    (position-shrinking ones last), so the latest growing orders are the ones rejected,
    each rejection taken out of the book before the next is judged. A batch whose
    end book is within every limit therefore passes whatever the sequence of its
    orders: no buy is refused because the sale that funds it comes later.

    ``store`` is the lake holding the central kill switch (read once for the batch)."""
    ts = now or datetime.now(UTC)
    kill = kill_switch_active(limits, store)
    running = _Book(book, *_tree_of(limits))
    restricted = set(limits.restricted) | set(book.restricted)
    loss_hit = book.daily_pnl <= -limits.daily_loss_limit_pct * book.nav
    seq = list(orders)
    rows: dict[int, list[dict[str, object]]] = {i: [] for i in range(len(seq))}
    breaches: dict[int, list[Breach]] = {i: [] for i in range(len(seq))}

    def record(at: int, rule: str, passed: bool, value: float, limit: float, reason: str) -> None:
        o = seq[at]
        rows[at].append(
            {
                "timestamp": ts,
                "client_order_id": o.client_order_id,
                "portfolio_id": o.portfolio_id,
                "security_id": o.security_id,
                "rule": rule,
                "passed": passed,
                "value": float(value),
                "limit": float(limit),
                "reason": "" if passed else reason,
            }
        )
        if not passed:
            breaches[at].append(Breach(rule, reason))

    # Order rules, each order alone; the orders passing them enter the batch's book.
    valid_at: list[int] = []
    in_book: set[int] = set()
    for at, order in enumerate(seq):
        record(at, "kill_switch", kill is None, float(kill is not None), 0.0, kill or "")
        valid = (
            order.side in ("buy", "sell")
            and math.isfinite(order.quantity)
            and order.quantity > 0
            and math.isfinite(order.reference_price)
            and order.reference_price > 0
            and (order.limit_price is None or order.limit_price > 0)
        )
        # A passed check's reason is never read: each is formatted only on a breach.
        record(
            at,
            "valid_order",
            valid,
            order.quantity,
            0.0,
            ""
            if valid
            else f"invalid order: side={order.side} qty={order.quantity} "
            f"ref={order.reference_price} limit={order.limit_price}",
        )
        if not valid:
            continue
        valid_at.append(at)
        is_restricted = order.security_id in restricted
        record(
            at,
            "restricted_list",
            not is_restricted,
            float(is_restricted),
            0.0,
            f"{order.security_id} is on the restricted list" if is_restricted else "",
        )
        notional = order.notional
        ok = notional <= limits.max_order_notional
        record(
            at,
            "max_order_notional",
            ok,
            notional,
            limits.max_order_notional,
            ""
            if ok
            else f"order notional {notional:,.0f} exceeds {limits.max_order_notional:,.0f}",
        )
        ok = order.quantity <= limits.max_order_shares
        record(
            at,
            "max_order_shares",
            ok,
            order.quantity,
            limits.max_order_shares,
            ""
            if ok
            else f"order quantity {order.quantity:,.0f} exceeds "
            f"{limits.max_order_shares:,.0f} shares",
        )
        adv_pct = order.quantity / order.adv if order.adv > 0 else math.inf
        ok = adv_pct <= limits.max_adv_pct
        record(
            at,
            "max_adv_pct",
            ok,
            adv_pct,
            limits.max_adv_pct,
            ""
            if ok
            else f"order is {adv_pct:.1%} of ADV ({order.adv:,.0f} sh), "
            f"limit {limits.max_adv_pct:.1%}",
        )
        close = order.last_close if order.last_close is not None else order.reference_price
        dev = abs(order.price / close - 1.0) if close > 0 else math.inf
        ok = dev <= limits.price_collar_pct
        record(
            at,
            "price_collar",
            ok,
            dev,
            limits.price_collar_pct,
            ""
            if ok
            else f"price {order.price:.4f} is {dev:.1%} from last close {close:.4f} "
            f"(collar {limits.price_collar_pct:.1%})",
        )
        if order.sector is not None:
            running.sectors.setdefault(order.security_id, order.sector)
        if not breaches[at]:
            in_book.add(at)
            running.move(order.security_id, order.signed_quantity * order.price)

    def shrinks(at: int) -> bool:
        o = seq[at]
        held = float(book.positions.get(o.security_id, 0.0))
        return abs(held + o.signed_quantity) < abs(held)

    # Each node's bounded kinds with their bounds and rule name, per (node limits, level):
    # functions of the frozen limits that every order asks again for every node it meets.
    bounds_of: dict[tuple[int, str], list[tuple[str, float, float, str]]] = {}

    def bounds(level: str, lim: NodeLimits) -> list[tuple[str, float, float, str]]:
        key = (id(lim), level)  # the tree holds `lim` for the whole batch
        found = bounds_of.get(key)
        if found is None:
            found = bounds_of[key] = [
                (kind, lim.lower(kind), lim.upper(kind), rule_name(level, kind))
                for kind in KINDS
                if lim.bounded(kind)
            ]
        return found

    # Book rules, last order first (position-shrinking orders judged after the others).
    for at in sorted(valid_at, key=lambda i: (not shrinks(i), i), reverse=True):
        order = seq[at]
        sid = order.security_id
        delta = order.signed_quantity * order.price
        now_n = running.notional.get(sid, 0.0)
        with_n, without_n = (now_n, now_n - delta) if at in in_book else (now_n + delta, now_n)
        w_with, w_without = with_n / running.nav, without_n / running.nav
        # The order's own exposures with and without it, per kind (the same at every node).
        e_with = {kind: _exposure(kind, w_with) for kind in KINDS}
        e_without = {kind: _exposure(kind, w_without) for kind in KINDS}
        for name, level, lim in running.chain(sid):
            for kind, lo, hi, rule in bounds(level, lim):
                change = e_with[kind] - e_without[kind]
                if level == "security":
                    v1, v0 = e_with[kind], e_without[kind]
                else:
                    base = running.node_sum(name, kind)
                    v1, v0 = (base, base - change) if at in in_book else (base + change, base)
                excess1 = max(v1 - hi, lo - v1, 0.0)
                excess0 = max(v0 - hi, lo - v0, 0.0)
                ok = excess1 <= LIMIT_TOL or excess1 <= excess0
                reason = ""
                if not ok:
                    bound = (
                        f"outside [{lo:+.3f}, {hi:+.3f}]" if kind == "net" else f"exceeds {hi:.3f}"
                    )
                    reason = f"post-trade {name} {kind} {v1:+.4f}×NAV {bound}"
                record(at, rule, ok, v1, lo if v1 < lo else hi, reason)
        risk_reducing = abs(with_n) < abs(without_n)
        ok = (not loss_hit) or risk_reducing
        record(
            at,
            "daily_loss_limit",
            ok,
            book.daily_pnl / book.nav,
            -limits.daily_loss_limit_pct,
            ""
            if ok
            else f"daily loss {book.daily_pnl:,.0f} breached −{limits.daily_loss_limit_pct:.1%} "
            "of NAV; only risk-reducing orders allowed",
        )
        if breaches[at] and at in in_book:
            in_book.discard(at)
            running.move(sid, -delta)

    accepted = [seq[i] for i in range(len(seq)) if not breaches[i]]
    rejected = [(seq[i], breaches[i]) for i in range(len(seq)) if breaches[i]]
    records = [r for i in range(len(seq)) for r in rows[i]]
    return PreTradeResult(accepted=accepted, rejected=rejected, records=records)


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
