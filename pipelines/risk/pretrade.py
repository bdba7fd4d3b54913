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
import io
import math
import pickle
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


#: One check's verdict as :func:`check_orders` keeps it: rule, passed, value, limit and
#: reason ("" when passed); the audit row adds the batch's timestamp and the order's ids.
Check = tuple[str, bool, float, float, str]


@dataclass(frozen=True)
class PreTradeResult:
    """The verdict on a batch: accepted and rejected orders, and one audit row per check
    (``records``: dicts with the :data:`AUDIT_COLUMNS`, in check order).

    ``checks`` holds each order's checks (aligned with ``orders``, the batch in sequence),
    stamped ``timestamp``; ``records`` and ``audit`` are built from them on first use (a
    preview reads only the frame, execution only the records)."""

    accepted: list[Order]
    rejected: list[tuple[Order, list[Breach]]]
    orders: list[Order] = field(repr=False)
    checks: list[list[Check]] = field(repr=False)
    timestamp: datetime

    @functools.cached_property
    def records(self) -> list[dict[str, object]]:
        """The audit rows, one dict per check, in check order."""
        ts = self.timestamp
        out: list[dict[str, object]] = []
        append = out.append
        for o, checks in zip(self.orders, self.checks, strict=True):
            cid, pid, sid = o.client_order_id, o.portfolio_id, o.security_id
            for rule, passed, value, limit, reason in checks:
                append(
                    {
                        "timestamp": ts,
                        "client_order_id": cid,
                        "portfolio_id": pid,
                        "security_id": sid,
                        "rule": rule,
                        "passed": passed,
                        "value": value,
                        "limit": limit,
                        "reason": reason,
                    }
                )
        return out

    def rows(self) -> list[tuple[str, str, str, str, bool, float, float, str]]:
        """The audit rows without the timestamp, as tuples (``client_order_id``,
        ``portfolio_id``, ``security_id``, ``rule``, ``passed``, ``value``, ``limit``,
        ``reason``), in check order: :attr:`records` without a dict per check."""
        return [
            (o.client_order_id, o.portfolio_id, o.security_id, *check)
            for o, checks in zip(self.orders, self.checks, strict=True)
            for check in checks
        ]

    @functools.cached_property
    def audit(self) -> pd.DataFrame:
        """The audit rows as a frame (built on first use: execution reads the records):
        ``pd.DataFrame(records, columns=AUDIT_COLUMNS)``, built from columns."""
        n = sum(len(c) for c in self.checks)
        if not n:
            return pd.DataFrame(self.records, columns=list(AUDIT_COLUMNS))
        cids: list[str] = []
        pids: list[str] = []
        sids: list[str] = []
        for o, checks in zip(self.orders, self.checks, strict=True):
            k = len(checks)
            cids += [o.client_order_id] * k
            pids += [o.portfolio_id] * k
            sids += [o.security_id] * k
        flat = [c for checks in self.checks for c in checks]
        rules, passed, values, limits, reasons = (list(x) for x in zip(*flat, strict=True))
        return pd.DataFrame(
            {
                "timestamp": [self.timestamp] * n,
                "client_order_id": cids,
                "portfolio_id": pids,
                "security_id": sids,
                "rule": rules,
                "passed": passed,
                "value": values,
                "limit": limits,
                "reason": reasons,
            },
            columns=list(AUDIT_COLUMNS),
        )

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
        nav, gross = self.nav, 0.0
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
            self._add(sid, abs(w), w, long, short)
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
        # Each kind's change (_exposure(kind, new) − _exposure(kind, old), inlined), the
        # same for every node of the chain: computed once.
        w_new, w_old = new / self.nav, old / self.nav
        v_new, v_old = -w_new, -w_old
        gross = abs(w_new) - abs(w_old)
        net = w_new - w_old
        long = (w_new if (w_new > 0.0 or w_new != w_new) else 0.0) - (
            w_old if (w_old > 0.0 or w_old != w_old) else 0.0
        )
        short = (v_new if (v_new > 0.0 or v_new != v_new) else 0.0) - (
            v_old if (v_old > 0.0 or v_old != v_old) else 0.0
        )
        self._add(sid, gross, net, long, short)

    def _add(self, sid: str, gross: float, net: float, long: float, short: float) -> None:
        """Add one security's exposure of each kind to every node of its chain."""
        sums_of = self.sums
        for name, _, _ in self.chain(sid):
            sums = sums_of.get(name)
            if sums is None:
                sums = sums_of[name] = dict.fromkeys(KINDS, 0.0)
            sums["gross"] += gross
            sums["net"] += net
            sums["long"] += long
            sums["short"] += short


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

    ``store`` is the lake holding the central kill switch (read once for the batch).

    A batch judged again with the same inputs (the daily loop's preview and then its
    execution check the same orders against the same book) gets the verdict of the last
    batch judged (:func:`_batch_key`) instead of running the rules again."""
    ts = now or datetime.now(UTC)
    kill = kill_switch_active(limits, store)
    seq = list(orders)
    key = _batch_key(seq, book, kill)
    last = _LAST[0] if _LAST else None
    if key is not None and last is not None and last[0] is limits and last[1] == key:
        checks = [c.copy() for c in last[2]]
        breaches = [b.copy() for b in last[3]]
    else:
        checks, breaches = _judge(seq, limits, book, kill)
        _LAST[:] = (
            [(limits, key, [c.copy() for c in checks], [b.copy() for b in breaches])]
            if key is not None
            else []
        )
    accepted = [o for o, b in zip(seq, breaches, strict=True) if not b]
    rejected = [(o, b) for o, b in zip(seq, breaches, strict=True) if b]
    return PreTradeResult(
        accepted=accepted, rejected=rejected, orders=seq, checks=checks, timestamp=ts
    )


#: The last batch :func:`check_orders` judged: its limits (kept alive: compared by
#: identity), :func:`_batch_key`, and each order's checks and breaches.
_LAST: list[tuple[RiskLimits, bytes, list[list[Check]], list[list[Breach]]]] = []


def _batch_key(seq: list[Order], book: BookState, kill: str | None) -> bytes | None:
    """Every input of :func:`_judge` but the limits, as bytes: equal bytes mean the same
    orders in the same sequence, the same book (each position with the mark the rules
    read for it, in the book's order) and the same kill-switch verdict, value for value
    and type for type (pickle writes a float's 8 bytes: signed zeros and NaN payloads
    count). None when an input does not pickle (then the batch is judged anew)."""
    prices = book.prices
    try:
        buf = io.BytesIO()
        pickler = pickle.Pickler(buf, pickle.HIGHEST_PROTOCOL)
        pickler.fast = True  # no memo: the bytes do not depend on objects' identities
        pickler.dump(
            (
                kill,
                book.nav,
                book.daily_pnl,
                [(sid, q, float(prices.get(sid, 0.0))) for sid, q in book.positions.items()],
                list(dict(book.sectors).items()),
                [(sid, list(dict(a).items())) for sid, a in book.attributes.items()],
                sorted(book.restricted),
                [
                    (
                        o.client_order_id,
                        o.portfolio_id,
                        o.trade_date,
                        o.security_id,
                        o.side,
                        o.quantity,
                        o.reference_price,
                        o.adv,
                        o.sector,
                        o.limit_price,
                        o.last_close,
                        o.order_type,
                    )
                    for o in seq
                ],
            )
        )
    except Exception:  # an input that does not pickle or sort: no key, judged anew
        return None
    return buf.getvalue()


def _judge(
    seq: list[Order], limits: RiskLimits, book: BookState, kill: str | None
) -> tuple[list[list[Check]], list[list[Breach]]]:
    """:func:`check_orders`' rules on the batch ``seq``: each order's checks (rule,
    passed, value, limit, reason) and breaches, aligned with ``seq``."""
    running = _Book(book, *_tree_of(limits))
    restricted = set(limits.restricted) | set(book.restricted)
    loss_hit = book.daily_pnl <= -limits.daily_loss_limit_pct * book.nav
    # Each order's checks (rule, passed, value, limit, reason) and breaches; the audit
    # rows are built from them only when asked for (PreTradeResult).
    checks: list[list[Check]] = [[] for _ in seq]
    breaches: list[list[Breach]] = [[] for _ in seq]

    # The limits as the audit rows carry them (float(): an int limit records as a float).
    max_notional, max_shares = limits.max_order_notional, limits.max_order_shares
    max_adv, collar = limits.max_adv_pct, limits.price_collar_pct
    f_notional, f_shares = float(max_notional), float(max_shares)
    f_adv, f_collar = float(max_adv), float(collar)
    kill_check: Check = ("kill_switch", kill is None, float(kill is not None), 0.0, "")
    if kill is not None:
        kill_check = ("kill_switch", False, 1.0, 0.0, kill)
    sectors = running.sectors

    # Order rules, each order alone; the orders passing them enter the batch's book.
    valid_at: list[int] = []
    in_book: set[int] = set()
    for at, order in enumerate(seq):
        mine = checks[at]
        failed = breaches[at]
        mine.append(kill_check)
        if kill is not None:
            failed.append(Breach("kill_switch", kill))
        quantity, ref, limit_price = order.quantity, order.reference_price, order.limit_price
        valid = (
            order.side in ("buy", "sell")
            and math.isfinite(quantity)
            and quantity > 0
            and math.isfinite(ref)
            and ref > 0
            and (limit_price is None or limit_price > 0)
        )
        # A passed check's reason is never read: each is formatted only on a breach.
        if valid:
            mine.append(("valid_order", True, float(quantity), 0.0, ""))
        else:
            reason = (
                f"invalid order: side={order.side} qty={quantity} ref={ref} limit={limit_price}"
            )
            mine.append(("valid_order", False, float(quantity), 0.0, reason))
            failed.append(Breach("valid_order", reason))
            continue
        valid_at.append(at)
        sid = order.security_id
        if sid in restricted:
            reason = f"{sid} is on the restricted list"
            mine.append(("restricted_list", False, 1.0, 0.0, reason))
            failed.append(Breach("restricted_list", reason))
        else:
            mine.append(("restricted_list", True, 0.0, 0.0, ""))
        price = limit_price if limit_price is not None else ref  # Order.price
        notional = abs(quantity) * price  # Order.notional
        if notional <= max_notional:
            mine.append(("max_order_notional", True, float(notional), f_notional, ""))
        else:
            reason = f"order notional {notional:,.0f} exceeds {max_notional:,.0f}"
            mine.append(("max_order_notional", False, float(notional), f_notional, reason))
            failed.append(Breach("max_order_notional", reason))
        if quantity <= max_shares:
            mine.append(("max_order_shares", True, float(quantity), f_shares, ""))
        else:
            reason = f"order quantity {quantity:,.0f} exceeds {max_shares:,.0f} shares"
            mine.append(("max_order_shares", False, float(quantity), f_shares, reason))
            failed.append(Breach("max_order_shares", reason))
        adv = order.adv
        adv_pct = quantity / adv if adv > 0 else math.inf
        if adv_pct <= max_adv:
            mine.append(("max_adv_pct", True, float(adv_pct), f_adv, ""))
        else:
            reason = f"order is {adv_pct:.1%} of ADV ({adv:,.0f} sh), limit {max_adv:.1%}"
            mine.append(("max_adv_pct", False, float(adv_pct), f_adv, reason))
            failed.append(Breach("max_adv_pct", reason))
        close = order.last_close if order.last_close is not None else ref
        dev = abs(price / close - 1.0) if close > 0 else math.inf
        if dev <= collar:
            mine.append(("price_collar", True, float(dev), f_collar, ""))
        else:
            reason = (
                f"price {price:.4f} is {dev:.1%} from last close {close:.4f} (collar {collar:.1%})"
            )
            mine.append(("price_collar", False, float(dev), f_collar, reason))
            failed.append(Breach("price_collar", reason))
        if order.sector is not None:
            sectors.setdefault(sid, order.sector)
        if not failed:
            in_book.add(at)
            running.move(sid, order.signed_quantity * price)

    def shrinks(at: int) -> bool:
        o = seq[at]
        held = float(book.positions.get(o.security_id, 0.0))
        return abs(held + o.signed_quantity) < abs(held)

    # Each node's bounded kinds with their bounds, rule name and the bound as recorded,
    # per (node limits, level): functions of the frozen limits that every order asks
    # again for every node it meets.
    bounds_of: dict[tuple[int, str], list[tuple[str, float, float, str, float, float]]] = {}

    def bounds(level: str, lim: NodeLimits) -> list[tuple[str, float, float, str, float, float]]:
        key = (id(lim), level)  # the tree holds `lim` for the whole batch
        found = bounds_of.get(key)
        if found is None:
            found = bounds_of[key] = []
            for kind in KINDS:
                if lim.bounded(kind):
                    lo, hi = lim.lower(kind), lim.upper(kind)
                    found.append((kind, lo, hi, rule_name(level, kind), float(lo), float(hi)))
        return found

    # Every bound an order of a security meets, in check order: (node, is the security's
    # own node, kind, lo, hi, rule, lo and hi as recorded). The chains are fixed once
    # the order rules have set the batch's sectors.
    node_checks: dict[str, list[tuple[str, bool, str, float, float, str, float, float]]] = {}
    sums_of = running.sums
    nav = running.nav
    notional_of = running.notional
    # The daily loss rule's value, limit and reason: the same for every order of the
    # batch (computed only when an order reaches the book rules, as they always were).
    loss_value, loss_limit, loss_reason = 0.0, 0.0, ""
    if valid_at:
        loss_value = float(book.daily_pnl / book.nav)
        loss_limit = float(-limits.daily_loss_limit_pct)
        loss_reason = (
            f"daily loss {book.daily_pnl:,.0f} breached −{limits.daily_loss_limit_pct:.1%} "
            "of NAV; only risk-reducing orders allowed"
        )
    no_sums: dict[str, float] = {}

    # Book rules, last order first (position-shrinking orders judged after the others).
    for at in sorted(valid_at, key=lambda i: (not shrinks(i), i), reverse=True):
        order = seq[at]
        mine = checks[at]
        failed = breaches[at]
        sid = order.security_id
        delta = order.signed_quantity * order.price
        now_n = notional_of.get(sid, 0.0)
        booked = at in in_book
        with_n, without_n = (now_n, now_n - delta) if booked else (now_n + delta, now_n)
        w_with, w_without = with_n / nav, without_n / nav
        # The order's own exposures with and without it, per kind (the same at every
        # node): _exposure() of each kind, inlined.
        v_with, v_without = -w_with, -w_without
        e_with = {
            "gross": abs(w_with),
            "net": w_with,
            "long": w_with if (w_with > 0.0 or w_with != w_with) else 0.0,
            "short": v_with if (v_with > 0.0 or v_with != v_with) else 0.0,
        }
        e_without = {
            "gross": abs(w_without),
            "net": w_without,
            "long": w_without if (w_without > 0.0 or w_without != w_without) else 0.0,
            "short": v_without if (v_without > 0.0 or v_without != v_without) else 0.0,
        }
        meets = node_checks.get(sid)
        if meets is None:
            meets = node_checks[sid] = [
                (name, level == "security", kind, lo, hi, rule, f_lo, f_hi)
                for name, level, lim in running.chain(sid)
                for kind, lo, hi, rule, f_lo, f_hi in bounds(level, lim)
            ]
        for name, own, kind, lo, hi, rule, f_lo, f_hi in meets:
            if own:
                v1, v0 = e_with[kind], e_without[kind]
            else:
                change = e_with[kind] - e_without[kind]
                base = sums_of.get(name, no_sums).get(kind, 0.0)
                v1, v0 = (base, base - change) if booked else (base + change, base)
            excess1 = max(v1 - hi, lo - v1, 0.0)
            excess0 = max(v0 - hi, lo - v0, 0.0)
            if excess1 <= LIMIT_TOL or excess1 <= excess0:
                mine.append((rule, True, float(v1), f_lo if v1 < lo else f_hi, ""))
            else:
                bound = f"outside [{lo:+.3f}, {hi:+.3f}]" if kind == "net" else f"exceeds {hi:.3f}"
                reason = f"post-trade {name} {kind} {v1:+.4f}×NAV {bound}"
                mine.append((rule, False, float(v1), f_lo if v1 < lo else f_hi, reason))
                failed.append(Breach(rule, reason))
        if (not loss_hit) or abs(with_n) < abs(without_n):
            mine.append(("daily_loss_limit", True, loss_value, loss_limit, ""))
        else:
            mine.append(("daily_loss_limit", False, loss_value, loss_limit, loss_reason))
            failed.append(Breach("daily_loss_limit", loss_reason))
        if failed and booked:
            in_book.discard(at)
            running.move(sid, -delta)

    return checks, breaches


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
