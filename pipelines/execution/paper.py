"""The paper broker: the embedded default venue, filling orders from the vendor's prices.

Behaviour:

* **Acknowledgement.** ``submit`` acknowledges immediately (``new``) or rejects (quantity
  not positive, bad limit price, or the optional ``reject_if`` hook — e.g. a broker-side
  restricted list). It is idempotent on client order id: a second submit returns the
  existing order untouched.
* **Fills during the order's session.** An order works in the session of its
  ``trade_date``; it fills once the :class:`~pipelines.execution.prices.PriceSource` has
  that session's bar (the lake's ``prices`` table once the vendor publishes the day).
  ``work()`` runs every session that has become available; ``order_status``, ``fills``,
  ``positions`` and ``cash`` call it first, so a reader always sees settled sessions.
* **Fill price.** Base price by algorithm — ``none``: the open (arrival); ``vwap``/``pov``:
  the VWAP proxy; ``twap``: ``(O + H + L + C) / 4`` — moved against us by the optimizer's
  cost model (half-spread + ``c·σ·sqrt(q/ADV)`` impact, see :mod:`.prices`). A limit
  order whose cost-adjusted price is worse than its limit does not fill.
* **Partial fills.** At most ``max_volume_share`` of the day's volume (POV: the lower of
  that and the requested participation) is filled, in ``slices`` executions. Orders are
  DAY orders: **the unfilled remainder expires** at the end of the session (status
  ``expired``, reason given). It is not carried: the next day's orders are netted against
  the positions actually held, so the shortfall is re-decided with fresh targets instead
  of trading stale ones.
* **Delistings.** A held position in a security the price source reports delisted (in
  force, as known at its knowledge time) becomes cash at the delisting price, booked once
  in the account (``delistings``); see :mod:`pipelines.execution.delistings`.
* **Corporate actions.** Splits and cash dividends of held securities (as the price source
  knows them, :class:`~pipelines.execution.corporate_actions.CorporateActionSource`)
  apply once per account at their ex-date, before that session's fills: a split
  multiplies the quantity, a dividend credits a long and charges a short
  (``corporate_actions``; see :mod:`pipelines.execution.corporate_actions`). An account
  takes the actions after the session before its first order (or its ``seed`` date).
* **Persistence.** Orders, fills, positions and cash live in one JSON document, replaced
  atomically after every change under an exclusive lock, so the broker survives process
  restarts and several processes may share it: a local file under ``flock`` or an S3
  object under a lease (:mod:`pipelines.execution.accounts`; the daily loop keeps it
  under the lake root).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pipelines.execution.accounts import AccountStore, LocalAccountFile, State
from pipelines.execution.broker import (
    Algo,
    AlgoInstruction,
    BrokerConnectionError,
    BrokerError,
    BrokerOrder,
    Fill,
    OrderState,
    OrderStatus,
    Side,
    sign,
)
from pipelines.execution.corporate_actions import (
    BookAction,
    CorporateActionSource,
    apply_actions,
)
from pipelines.execution.delistings import Delisting, DelistingSource
from pipelines.execution.prices import CostModel, PriceSource, SessionBar


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def base_price(algo: Algo, bar: SessionBar) -> float:
    """The undisturbed price an algorithm achieves over the session (see module doc)."""
    if algo is Algo.NONE:
        return bar.open
    if algo is Algo.TWAP:
        return (bar.open + bar.high + bar.low + bar.close) / 4.0
    return bar.vwap_or_proxy


def split_quantity(quantity: float, slices: int) -> list[float]:
    """``quantity`` whole shares in up to ``slices`` non-empty whole-share parts."""
    q = round(quantity)
    n = max(1, min(slices, q))
    base, extra = divmod(q, n)
    return [float(base + (1 if i < extra else 0)) for i in range(n) if base + (i < extra) > 0]


class PaperBroker:
    """Simulated broker with persistent state (see module doc).

    ``clock`` stamps acknowledgements (default: wall clock); fills are stamped at the
    session's close (``fill_time`` UTC on the trade date) so re-runs are reproducible.
    """

    name = "paper"

    def __init__(
        self,
        state: str | Path | AccountStore,
        prices: PriceSource,
        *,
        cost_model: CostModel | None = None,
        max_volume_share: float = 0.10,
        slices: int = 3,
        initial_cash: float = 0.0,
        reject_if: Callable[[BrokerOrder], str | None] | None = None,
        fill_time: dt.time = dt.time(21, 0),
        clock: Callable[[], dt.datetime] = _now,
        auto_work: bool = True,
    ) -> None:
        self.account: AccountStore = (
            LocalAccountFile(Path(state)) if isinstance(state, str | Path) else state
        )
        self.prices = prices
        self.cost_model = cost_model or CostModel()
        self.max_volume_share = max_volume_share
        self.slices = slices
        self.initial_cash = initial_cash
        self.reject_if = reject_if
        self.fill_time = fill_time
        self.clock = clock
        self.auto_work = auto_work
        self.connected = False
        # ISO fill stamps by (trade date, fill time): see _stamp.
        self._stamps: dict[tuple[str, dt.time], str] = {}

    # ---- session ---------------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        """The local state file (only for a :class:`LocalAccountFile` account)."""
        if not isinstance(self.account, LocalAccountFile):
            raise BrokerError(f"paper broker state is not a local file: {self.account.location}")
        return self.account.path

    def connect(self) -> None:
        self.account.prepare()
        self.connected = True

    def close(self) -> None:
        self.connected = False

    def __enter__(self) -> PaperBroker:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require(self) -> None:
        if not self.connected:
            raise BrokerConnectionError("paper broker: not connected (call connect())")

    @contextlib.contextmanager
    def _state(self, write: bool = True) -> Iterator[State]:
        """The state; with ``write`` under the account's lock, saved atomically on exit."""
        with self.account.open(write) as state:
            yield state

    # ---- orders ----------------------------------------------------------------------

    def submit(self, order: BrokerOrder) -> OrderState:
        self._require()
        with self._state() as st:
            existing = st["orders"].get(order.client_order_id)
            if existing is not None:
                return _order_state(existing)
            st["seq"] += 1
            reason = self._reject_reason(order)
            rec = {
                "client_order_id": order.client_order_id,
                "broker_order_id": f"P{st['seq']:08d}",
                "account": order.account,
                "trade_date": order.trade_date.isoformat(),
                "security_id": order.security_id,
                "side": order.side,
                "quantity": float(order.quantity),
                "order_type": order.order_type,
                "limit_price": order.limit_price,
                "algo": order.algo.algo.value,
                "participation": order.algo.participation,
                "status": (OrderStatus.REJECTED if reason else OrderStatus.NEW).value,
                "filled_quantity": 0.0,
                "avg_price": None,
                "reason": reason,
                "updated_at": self.clock().isoformat(),
            }
            st["orders"][order.client_order_id] = rec
            # Corporate actions apply to this account from its first order's session on.
            watermarks = st.setdefault("actions_through", {})
            if order.account not in watermarks:
                day_before = order.trade_date - dt.timedelta(days=1)
                watermarks[order.account] = day_before.isoformat()
            return _order_state(rec)

    def _reject_reason(self, order: BrokerOrder) -> str | None:
        if not (math.isfinite(order.quantity) and order.quantity > 0):
            return f"invalid quantity {order.quantity}"
        if order.order_type == "limit" and not (order.limit_price and order.limit_price > 0):
            return "limit order without a positive limit price"
        if self.reject_if is not None:
            return self.reject_if(order)
        return None

    def cancel(self, client_order_id: str) -> OrderState:
        self._require()
        with self._state() as st:
            rec = st["orders"].get(client_order_id)
            if rec is None:
                raise BrokerError(f"cancel: unknown client order id {client_order_id}")
            if not OrderStatus(rec["status"]).terminal:
                rec["status"] = OrderStatus.CANCELLED.value
                rec["reason"] = "cancelled by client"
                rec["updated_at"] = self.clock().isoformat()
            return _order_state(rec)

    def open_orders(self, account: str) -> list[OrderState]:
        self._require()  # no auto-work: what is working now must not fill first
        with self._state(write=False) as st:
            recs = sorted(st["orders"].values(), key=lambda r: str(r["broker_order_id"]))
            return [
                _order_state(r)
                for r in recs
                if r["account"] == account and not OrderStatus(r["status"]).terminal
            ]

    def order_status(self, client_order_id: str) -> OrderState | None:
        self._require()
        self._auto_work()
        with self._state(write=False) as st:
            rec = st["orders"].get(client_order_id)
            return None if rec is None else _order_state(rec)

    # ---- account ---------------------------------------------------------------------

    def positions(self, account: str) -> dict[str, float]:
        self._require()
        self._auto_work()
        with self._state(write=False) as st:
            pos = st["positions"].get(account, {})
            return {s: float(q) for s, q in sorted(pos.items()) if abs(q) > 1e-9}

    def fills(self, account: str, trade_date: dt.date | None = None) -> list[Fill]:
        self._require()
        self._auto_work()
        day = None if trade_date is None else trade_date.isoformat()
        with self._state(write=False) as st:
            # Filter on the record first: the fill list holds every fill of the account.
            return [
                _fill(f)
                for f in st["fills"]
                if f["account"] == account and (day is None or f["trade_date"] == day)
            ]

    def cash(self, account: str) -> float | None:
        self._require()
        self._auto_work()
        with self._state(write=False) as st:
            return float(st["cash"].get(account, self.initial_cash))

    def seed(
        self,
        account: str,
        positions: Mapping[str, float],
        cash: float | None = None,
        *,
        as_of: dt.date | None = None,
    ) -> None:
        """Set an account's starting positions (and cash) — for a fresh paper account —
        held at the close of ``as_of`` (default: the price source's current session), so
        corporate actions with a later ex-date apply to them."""
        through = as_of
        if through is None and isinstance(self.prices, CorporateActionSource):
            through = self.prices.actions_through()
        with self._state() as st:
            st["positions"][account] = {s: float(q) for s, q in positions.items()}
            if cash is not None:
                st["cash"][account] = float(cash)
            if through is not None:
                st.setdefault("actions_through", {})[account] = through.isoformat()

    def inject_fill(
        self,
        account: str,
        security_id: str,
        side: Side,
        quantity: float,
        price: float,
        trade_date: dt.date,
        client_order_id: str = "EXTERNAL",
    ) -> Fill:
        """Book an execution we did not originate (a manual trade at the broker, a broker
        error) — the kind of break reconciliation must catch."""
        with self._state() as st:
            st["seq"] += 1
            fill = {
                "fill_id": f"X{st['seq']:08d}",
                "client_order_id": client_order_id,
                "broker_order_id": None,
                "account": account,
                "trade_date": trade_date.isoformat(),
                "security_id": security_id,
                "side": side,
                "quantity": float(quantity),
                "price": float(price),
                "commission": 0.0,
                "timestamp": self._fill_ts(trade_date).isoformat(),
            }
            self._book(st, fill)
            return _fill(fill)

    def snapshot(self) -> tuple[list[dict[str, Any]], list[Fill]]:
        """Every order record (JSON-able dicts, in arrival order) and every fill, all
        accounts — what the FIX simulator publishes as execution reports."""
        with self._state(write=False) as st:
            orders = sorted(st["orders"].values(), key=lambda r: str(r["broker_order_id"]))
            return [dict(r) for r in orders], [_fill(f) for f in st["fills"]]

    # ---- simulation ------------------------------------------------------------------

    def _auto_work(self) -> None:
        if self.auto_work:
            self.work()

    @contextlib.contextmanager
    def consistent_reads(self) -> Iterator[None]:
        """Work the orders once now, then answer every query in the block from that state
        without working them again (see :func:`pipelines.execution.broker.consistent_reads`).
        Orders sent inside the block are worked at the next query after it."""
        self._auto_work()
        saved, self.auto_work = self.auto_work, False
        try:
            yield
        finally:
            self.auto_work = saved

    def work(self, trade_date: dt.date | None = None) -> int:
        """Fill every working order whose session bar is available (or only ``trade_date``'s).
        Returns the number of orders that reached a terminal state."""
        with self._state(write=False) as st:
            pending = [
                r
                for r in self._working(st)
                if trade_date is None or r["trade_date"] == trade_date.isoformat()
            ]
        if not pending:
            self._settle_corporate_actions()
            self._settle_delistings()
            return 0
        by_day: dict[str, list[str]] = {}
        for r in pending:
            by_day.setdefault(r["trade_date"], []).append(r["security_id"])
        bars = {
            day: self.prices.session(dt.date.fromisoformat(day), sorted(set(sids)))
            for day, sids in by_day.items()
        }
        done = 0
        # Session by session: a day's corporate actions (ex-date on or before it) meet the
        # positions of record before that day's fills do.
        for day in sorted(bars):
            if not bars[day]:
                continue  # session not published yet: keep working
            self._settle_corporate_actions(dt.date.fromisoformat(day))
            with self._state() as st:
                for rec in self._working(st):
                    if rec["trade_date"] != day:
                        continue
                    self._work_order(st, rec, bars[day].get(rec["security_id"]))
                    done += 1
        self._settle_corporate_actions()
        self._settle_delistings()
        return done

    def _working(self, st: State) -> list[dict[str, Any]]:
        """The order records still working (not terminal), in arrival order."""
        return [r for r in st["orders"].values() if is_working(r)]

    def _settle_corporate_actions(self, through: dt.date | None = None) -> int:
        """Apply the splits and dividends with an ex-date after each account's watermark
        and on or before ``through`` (default: the price source's current session) to the
        account's positions and cash, once; advance the watermarks. Returns the actions
        that met a position."""
        if not isinstance(self.prices, CorporateActionSource):
            return 0
        latest = self.prices.actions_through()
        through = latest if through is None else min(through, latest)
        with self._state(write=False) as st:
            marks = {a: dt.date.fromisoformat(d) for a, d in st.get("actions_through", {}).items()}
            due = [a for a, d in marks.items() if d < through]
            held = sorted(
                {s for a in due for s, q in st["positions"].get(a, {}).items() if abs(q) > 1e-9}
            )
        if not due:
            return 0
        actions = (
            self.prices.corporate_actions(held, after=min(marks[a] for a in due)) if held else []
        )
        done = 0
        with self._state() as st:
            watermarks = st.setdefault("actions_through", {})
            for acct in due:
                mark = dt.date.fromisoformat(watermarks[acct])
                if mark >= through:
                    continue  # another process got here first
                mine = [a for a in actions if mark < a.ex_date <= through]
                done += self._book_actions(st, acct, mine)
                watermarks[acct] = through.isoformat()
        return done

    def _book_actions(self, st: State, account: str, actions: list[BookAction]) -> int:
        positions = st["positions"].setdefault(account, {})
        after, paid, applied = apply_actions(positions, actions)
        if not applied:
            return 0
        for item in applied:
            st["seq"] += 1
            st.setdefault("corporate_actions", []).append(
                {"event_id": f"C{st['seq']:08d}", "account": account, **item.event()}
            )
        positions.update({s: q for s, q in after.items() if s in positions})
        st["cash"][account] = st["cash"].get(account, self.initial_cash) + paid
        return len(applied)

    def corporate_actions(self, account: str) -> list[dict[str, Any]]:
        """The splits and dividends booked in ``account`` (oldest first)."""
        self._require()
        self._auto_work()
        with self._state(write=False) as st:
            return [dict(e) for e in st.get("corporate_actions", []) if e["account"] == account]

    def _settle_delistings(self) -> int:
        """Convert every held position in a delisted security to cash at its delisting
        price (:mod:`pipelines.execution.delistings`), once the price source says the
        delisting is in force. A security with an order still working on or before its
        delisting date waits for that order. Returns the positions converted."""
        if not isinstance(self.prices, DelistingSource):
            return 0
        with self._state(write=False) as st:
            held = sorted(
                {s for pos in st["positions"].values() for s, q in pos.items() if abs(q) > 1e-9}
            )
        if not held:
            return 0
        delisted = self.prices.delistings(held)
        if not delisted:
            return 0
        done = 0
        with self._state() as st:
            working = {(r["account"], r["security_id"]): r["trade_date"] for r in self._working(st)}
            for acct, pos in st["positions"].items():
                for sid, d in sorted(delisted.items()):
                    qty = float(pos.get(sid, 0.0))
                    if abs(qty) <= 1e-9:
                        continue
                    pending = working.get((acct, sid))
                    if pending is not None and pending <= d.effective_date.isoformat():
                        continue
                    self._book_delisting(st, acct, d, qty)
                    done += 1
        return done

    def _book_delisting(self, st: State, account: str, d: Delisting, quantity: float) -> None:
        st["seq"] += 1
        st.setdefault("delistings", []).append(
            {
                "event_id": f"D{st['seq']:08d}",
                "account": account,
                "security_id": d.security_id,
                "effective_date": d.effective_date.isoformat(),
                "quantity": quantity,
                "price": d.price,
                "proceeds": quantity * d.price,
                "reason": d.reason,
            }
        )
        st["positions"][account][d.security_id] = 0.0
        cash = st["cash"].get(account, self.initial_cash)
        st["cash"][account] = cash + quantity * d.price

    def delistings(self, account: str) -> list[dict[str, Any]]:
        """The delisting cash-outs booked in ``account`` (oldest first)."""
        self._require()
        self._auto_work()
        with self._state(write=False) as st:
            return [dict(e) for e in st.get("delistings", []) if e["account"] == account]

    def _work_order(self, st: State, rec: dict[str, Any], bar: SessionBar | None) -> None:
        leaves = rec["quantity"] - rec["filled_quantity"]
        if bar is None:
            self._expire(rec, "no trading in the security this session")
            return
        share = self.max_volume_share
        if rec["algo"] == _POV and rec.get("participation"):
            share = min(share, float(rec["participation"]))
        cap = math.floor(share * max(bar.volume, 0.0))
        qty = float(min(leaves, cap))
        algo = _ALGOS.get(rec["algo"]) or Algo(rec["algo"])
        base = base_price(algo, bar)
        price = self.cost_model.execution_price(rec["side"], qty, base, bar)
        limit = rec.get("limit_price")
        if limit is not None and (
            (rec["side"] == "buy" and price > limit) or (rec["side"] == "sell" and price < limit)
        ):
            self._expire(rec, f"limit {limit} not reached (achievable {price:.4f})")
            return
        if qty <= 0:
            self._expire(rec, f"no volume available (cap {share:.0%} of {bar.volume:,.0f})")
            return
        stamp = self._stamp(rec["trade_date"])  # every slice's, and the order's update
        partial = _PARTIAL
        fill_price = round(price, 6)  # every slice's
        for k, part in enumerate(split_quantity(qty, self.slices), start=1):
            fill = {
                "fill_id": f"{rec['broker_order_id']}-{k}",
                "client_order_id": rec["client_order_id"],
                "broker_order_id": rec["broker_order_id"],
                "account": rec["account"],
                "trade_date": rec["trade_date"],
                "security_id": rec["security_id"],
                "side": rec["side"],
                "quantity": part,
                "price": fill_price,
                "commission": round(part * self.cost_model.commission_per_share, 6),
                "timestamp": stamp,
            }
            self._book(st, fill)
            filled = rec["filled_quantity"]
            avg = rec["avg_price"] or 0.0
            rec["avg_price"] = (avg * filled + fill["price"] * part) / (filled + part)
            rec["filled_quantity"] = filled + part
            rec["status"] = partial
        rec["updated_at"] = stamp
        if rec["filled_quantity"] >= rec["quantity"] - 1e-9:
            rec["status"] = _FILLED
        else:
            self._expire(
                rec,
                f"DAY order expired: {rec['quantity'] - rec['filled_quantity']:,.0f} sh unfilled "
                f"(cap {share:.0%} of volume {bar.volume:,.0f})",
            )

    def _expire(self, rec: dict[str, Any], reason: str) -> None:
        rec["status"] = OrderStatus.EXPIRED.value
        rec["reason"] = reason
        rec["updated_at"] = self._stamp(rec["trade_date"])

    def _stamp(self, trade_date: str) -> str:
        """``_fill_ts`` of the ISO trade date, as ISO text (each session's once: every
        order of the session is stamped with it)."""
        key = (trade_date, self.fill_time)
        stamps = self._stamps
        stamp = stamps.get(key)
        if stamp is None:
            if len(stamps) > 64:
                stamps.clear()
            stamp = stamps[key] = self._fill_ts(dt.date.fromisoformat(trade_date)).isoformat()
        return stamp

    def _book(self, st: State, fill: dict[str, Any]) -> None:
        st["fills"].append(fill)
        acct = fill["account"]
        pos = st["positions"].setdefault(acct, {})
        s = sign(fill["side"])
        pos[fill["security_id"]] = pos.get(fill["security_id"], 0.0) + s * fill["quantity"]
        cash = st["cash"].get(acct, self.initial_cash)
        st["cash"][acct] = cash - s * fill["quantity"] * fill["price"] - fill["commission"]

    def _fill_ts(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, self.fill_time, tzinfo=dt.UTC)


_ALGOS = {a.value: a for a in Algo}
_POV = Algo.POV.value
_PARTIAL = OrderStatus.PARTIALLY_FILLED.value
_FILLED = OrderStatus.FILLED.value
_TERMINAL = frozenset(s.value for s in OrderStatus if s.terminal)
_WORKING = frozenset(s.value for s in OrderStatus if not s.terminal)


def is_working(rec: Mapping[str, Any]) -> bool:
    """Whether an order record may still fill (OrderStatus.terminal, without building an
    enum per record: the broker asks it of every order it ever took, many times a day)."""
    status = rec["status"]
    if status in _WORKING:
        return True
    if status in _TERMINAL:
        return False
    return not OrderStatus(status).terminal  # an unknown status raises, as it always did


def _order_state(rec: Mapping[str, Any]) -> OrderState:
    return OrderState(
        client_order_id=rec["client_order_id"],
        status=OrderStatus(rec["status"]),
        quantity=float(rec["quantity"]),
        filled_quantity=float(rec["filled_quantity"]),
        avg_price=rec["avg_price"],
        broker_order_id=rec["broker_order_id"],
        reason=rec["reason"],
        updated_at=dt.datetime.fromisoformat(rec["updated_at"]),
    )


def _fill(f: Mapping[str, Any]) -> Fill:
    return Fill(
        fill_id=f["fill_id"],
        client_order_id=f["client_order_id"],
        account=f["account"],
        trade_date=dt.date.fromisoformat(f["trade_date"]),
        security_id=f["security_id"],
        side=f["side"],
        quantity=float(f["quantity"]),
        price=float(f["price"]),
        timestamp=dt.datetime.fromisoformat(f["timestamp"]),
        commission=float(f["commission"]),
        broker_order_id=f["broker_order_id"],
    )


__all__ = ["AlgoInstruction", "PaperBroker", "base_price", "split_quantity"]
