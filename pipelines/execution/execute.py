"""``execute_day``: from targets to orders at the broker, safely re-runnable.

Sequence (each step's output is in the lake before the next step starts):

1. **Orders.** If the day's orders already exist in ``orders`` they are reused as they are
   (a retried task or a re-run day never re-derives quantities from positions that its own
   fills may have changed). Otherwise: current positions (the broker's, i.e. as
   reconciled — or ``current_positions``) are netted against the targets, every order goes
   through the pre-trade checks, and all orders are written to ``orders`` in one commit
   together with the checks and the targets in ``execution_audit``.
2. **Send.** Accepted orders without a broker acknowledgement in ``order_events`` are sent
   in sequence. When the order may already have reached the broker (a resumed run, or
   after a reconnect) the broker is asked for its status first and the order is only
   sent if the broker has never seen its id. Connection drops are retried with
   ``close()``/``connect()`` up to ``max_reconnects`` times per order. The kill switch
   (:mod:`pipelines.risk.kill_switch`, in the lake) is read before the batch and re-read
   before a send once ``kill_switch_poll`` seconds have passed since the last read (default
   1 s: an operator's engage reaches a running batch within a second, while a batch of
   hundreds of orders does not pay one lake read per order): once it is engaged every open order of the portfolio is cancelled
   at the broker (``cancel`` events) and the rest are held back (``blocked`` events; a
   later run sends them once it is released). If its state cannot be read nothing is
   sent (fail closed), but nothing is cancelled either.
3. **Events.** Acks and broker rejects go to ``order_events`` every ``flush_every`` orders
   and — even when the task fails — before ``execute_day`` returns or raises.

``sync_orders`` (called by ``reconcile_day``, or by the DAG after the session) pulls the
broker's order states and fills for our orders into ``order_events`` and ``fills``.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pipelines.execution.broker import (
    AlgoInstruction,
    Broker,
    BrokerConnectionError,
    BrokerOrder,
    OrderState,
    OrderStatus,
    TargetsError,
    consistent_reads,
)
from pipelines.execution.corporate_actions import lake_corporate_actions, split_ratios
from pipelines.execution.orders import (
    broker_order,
    generate_orders,
    load_orders,
    order_rows,
    run_pretrade,
    targets_frame,
)
from pipelines.execution.records import (
    append_records,
    now_utc,
    read_day,
    short_hash,
    stored_keys,
    write_audit,
    write_audits,
)
from pipelines.lake.interface import Store
from pipelines.portfolio.targets import TargetPortfolio
from pipelines.risk.kill_switch import (
    KillSwitchState,
    KillSwitchUnreadableError,
    engage,
    read_state,
)
from pipelines.risk.pretrade import BookState, RiskLimits, kill_switch_active

log = logging.getLogger(__name__)

# Event types meaning "the broker has this order" — such orders are never sent again.
AT_BROKER_EVENTS = frozenset(
    {"ack", "reject", "partial_fill", "fill", "expire", "cancel", "pending_new"}
)
_EVENT_OF_STATUS = {
    OrderStatus.PENDING_NEW: "pending_new",
    OrderStatus.NEW: "ack",
    OrderStatus.PARTIALLY_FILLED: "partial_fill",
    OrderStatus.FILLED: "fill",
    OrderStatus.CANCELLED: "cancel",
    OrderStatus.REJECTED: "reject",
    OrderStatus.EXPIRED: "expire",
}


@dataclass
class ExecutionReport:
    """What one ``execute_day`` call did.

    ``orders`` are the day's ``orders`` rows; ``generated`` is False when they already
    existed (a retry or re-run). ``submitted`` were sent by this call;
    ``already_at_broker`` were found at the broker (earlier run) and not sent again;
    ``rejected_pretrade`` failed a risk check and were never sent; ``rejected_broker``
    were refused by the broker; ``blocked`` were held back by the kill switch;
    ``cancelled`` were working at the broker and cancelled because it was engaged.
    """

    portfolio_id: str
    trade_date: dt.date
    orders: pd.DataFrame
    generated: bool
    submitted: list[str] = field(default_factory=list)
    already_at_broker: list[str] = field(default_factory=list)
    rejected_pretrade: list[str] = field(default_factory=list)
    rejected_broker: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    reconnects: int = 0

    def summary(self) -> dict[str, object]:
        return {
            "portfolio_id": self.portfolio_id,
            "trade_date": self.trade_date.isoformat(),
            "orders": len(self.orders),
            "generated": self.generated,
            "submitted": len(self.submitted),
            "already_at_broker": len(self.already_at_broker),
            "rejected_pretrade": len(self.rejected_pretrade),
            "rejected_broker": len(self.rejected_broker),
            "blocked": len(self.blocked),
            "cancelled": len(self.cancelled),
            "reconnects": self.reconnects,
        }


def event_row(
    order: Mapping[Any, Any] | BrokerOrder,
    state: OrderState,
    broker_name: str,
    *,
    event_type: str | None = None,
    reason: str | None = None,
    known_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """An ``order_events`` row for ``state``. The event id is deterministic for the fact
    (order, event type, filled quantity), so recording it twice stores it once."""
    if isinstance(order, BrokerOrder):
        cid, pid, sid = order.client_order_id, order.account, order.security_id
    else:
        cid, pid, sid = (
            str(order["client_order_id"]),
            str(order["portfolio_id"]),
            str(order["security_id"]),
        )
    etype = event_type or _EVENT_OF_STATUS[state.status]
    suffix = f":{state.filled_quantity:g}" if etype == "partial_fill" else ""
    if etype == "blocked":
        suffix = f":{short_hash(known_at, reason, n=8)}"
    row: dict[str, Any] = {
        "event_id": f"{cid}:{etype}{suffix}",
        "client_order_id": cid,
        "portfolio_id": pid,
        "security_id": sid,
        "event_type": etype,
        "status": state.status.value,
        "broker_order_id": state.broker_order_id,
        "quantity": state.quantity,
        "filled_quantity": state.filled_quantity,
        "leaves_quantity": state.leaves_quantity,
        "avg_price": state.avg_price,
        "reason": reason if reason is not None else state.reason,
        "broker": broker_name,
    }
    if known_at is not None:
        row["known_at"] = known_at
    return row


def at_broker(events: pd.DataFrame) -> set[str]:
    """Client order ids the broker is known (from our events) to hold."""
    if events.empty:
        return set()
    # Row by row over the two columns' values (the mask and selection of the frame cost
    # more than the few thousand comparisons); ``str`` as ``astype(str)`` gives a value.
    return {
        c if type(c) is str else str(c)
        for c, e in zip(
            events["client_order_id"].tolist(), events["event_type"].tolist(), strict=True
        )
        if e in AT_BROKER_EVENTS
    }


def execute_day(
    lake: Store,
    portfolio_id: str,
    trade_date: dt.date,
    targets: TargetPortfolio | pd.DataFrame,
    broker: Broker,
    limits: RiskLimits,
    *,
    book: BookState | None = None,
    nav: float | None = None,
    current_positions: Mapping[str, float] | None = None,
    adv: Mapping[str, float] | None = None,
    sectors: Mapping[str, str] | None = None,
    prices: Mapping[str, float] | None = None,
    lot_size: int | Mapping[str, int] = 1,
    algo: AlgoInstruction | None = None,
    max_reconnects: int = 3,
    reconnect_wait: float = 0.0,
    flush_every: int = 50,
    kill_switch_poll: float = 1.0,
    clock: Callable[[], dt.datetime] = now_utc,
) -> ExecutionReport:
    """Generate (once), check, persist and send the day's orders; see the module doc.

    ``targets`` is a :class:`~pipelines.portfolio.targets.TargetPortfolio`, the frame
    :func:`~pipelines.execution.orders.load_targets` reads from ``target_portfolios``, or
    any frame with ``security_id``, ``target_shares`` and ``price`` (the decision price);
    a ``portfolio_id`` column, if present, must match ``portfolio_id``.

    Promises: nothing is sent that is not first in ``orders`` with ``status = accepted``;
    no client order id is submitted to the broker once the broker has it; every send
    outcome is in ``order_events`` when this returns or raises (barring a hard kill, which
    the next run recovers from by asking the broker). ``book`` defaults to the current
    positions marked at the targets' prices with NAV ``nav`` (or the targets' portfolio
    value). ``adv`` is in shares; ``lot_size`` per security or global; ``prices`` (the
    book's marks) price a held security the targets leave out.
    """
    broker.connect()
    existing = load_orders(lake, portfolio_id, trade_date)
    report = ExecutionReport(portfolio_id, trade_date, existing, generated=existing.empty)
    if existing.empty:
        report.orders = _generate(
            lake,
            portfolio_id,
            trade_date,
            targets,
            broker,
            limits,
            book=book,
            nav=nav,
            current_positions=current_positions,
            adv=adv,
            sectors=sectors,
            prices=prices,
            lot_size=lot_size,
            algo=algo,
            clock=clock,
        )
    orders = report.orders
    # The rows by status, in the frame's order, from the columns' values (the boolean
    # selections of the frame cost more than the rows' Python comparisons).
    statuses = orders["status"].tolist()
    records = _records(orders, _ORDER_FIELDS)
    report.rejected_pretrade = [
        r["client_order_id"] for r, s in zip(records, statuses, strict=True) if s == "rejected"
    ]
    events = read_day(lake, "order_events", trade_date, portfolio_id)
    done = at_broker(events)
    accepted = [r for r, s in zip(records, statuses, strict=True) if s == "accepted"]
    report.already_at_broker = [
        r["client_order_id"] for r in accepted if r["client_order_id"] in done
    ]
    todo = [r for r in accepted if r["client_order_id"] not in done]
    # A resumed run may have sent orders whose ack it never recorded: ask before sending.
    maybe_sent = not report.generated
    buffer: list[dict[str, Any]] = []

    def flush() -> None:
        if buffer:
            # Deduplicated against the keys stored now (every portfolio's: a client order
            # id hashes its portfolio, so another's never equals ours), read as keys only
            # rather than as the portfolio's whole events frame.
            append_records(lake, "order_events", buffer, trade_date, known_at=clock())
            buffer.clear()

    halted = False

    def halt(reason: str) -> None:
        """Once per run, when the switch is engaged: cancel everything still working."""
        nonlocal halted
        if halted or not switch_engaged(limits, lake):
            return
        halted = True
        ours = orders.set_index("client_order_id", drop=False)
        for state in cancel_open_orders(broker, portfolio_id):
            report.cancelled.append(state.client_order_id)
            if state.client_order_id in ours.index:
                buffer.append(
                    event_row(
                        ours.loc[state.client_order_id].to_dict(),
                        state,
                        broker.name,
                        event_type="cancel",
                        reason=reason,
                        known_at=clock(),
                    )
                )

    try:
        kill = kill_switch_active(limits, lake)
        read_at = time.monotonic()
        if kill is not None:
            halt(kill)
        for row in todo:
            order = broker_order(row, trade_date)
            if kill is None and time.monotonic() - read_at >= kill_switch_poll:
                kill = kill_switch_active(limits, lake)
                read_at = time.monotonic()
            if kill is not None:
                halt(kill)
                state = OrderState(order.client_order_id, OrderStatus.PENDING_NEW, order.quantity)
                buffer.append(
                    event_row(
                        order,
                        state,
                        broker.name,
                        event_type="blocked",
                        reason=kill,
                        known_at=clock(),
                    )
                )
                report.blocked.append(order.client_order_id)
                continue
            state, recovered, reconnects = _send(
                broker, order, maybe_sent, max_reconnects, reconnect_wait
            )
            report.reconnects += reconnects
            maybe_sent = maybe_sent or reconnects > 0
            note = "found at broker; not re-sent" if recovered else None
            # The send step records the acknowledgement only; later states come from sync.
            etype = "reject" if state.status is OrderStatus.REJECTED else "ack"
            buffer.append(
                event_row(
                    order, state, broker.name, event_type=etype, reason=note, known_at=clock()
                )
            )
            if recovered:
                report.already_at_broker.append(order.client_order_id)
            elif state.status is OrderStatus.REJECTED:
                report.rejected_broker.append(order.client_order_id)
            else:
                report.submitted.append(order.client_order_id)
            if state.status is OrderStatus.REJECTED and recovered:
                report.rejected_broker.append(order.client_order_id)
            if len(buffer) >= flush_every:
                flush()
    finally:
        flush()
        write_audit(
            lake,
            portfolio_id,
            trade_date,
            "send",
            [
                {
                    "event": "send_run",
                    "event_id": short_hash(clock(), report.summary(), n=24),
                    "detail": report.summary(),
                }
            ],
            known_at=clock(),
        )
    log.info("execute_day %s %s: %s", portfolio_id, trade_date, report.summary())
    return report


# The ``orders`` columns an order is sent with (:func:`~.orders.broker_order`).
_ORDER_FIELDS = (
    "client_order_id",
    "portfolio_id",
    "security_id",
    "side",
    "quantity",
    "order_type",
    "limit_price",
    "algo",
    "algo_params",
)


def _records(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
    """``frame[columns].to_dict("records")`` (the same Python values, row by row) from one
    ``tolist`` per column instead of boxing every cell through ``itertuples``."""
    values = [frame[c].tolist() for c in columns]
    return [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]


_SYNC_FIELDS = ("client_order_id", "portfolio_id", "security_id")


def _by_security(orders: pd.DataFrame) -> list[dict[str, Any]]:
    """``_records`` of ``orders.sort_values("security_id")`` (the order
    :func:`~.orders.load_orders` gives), for the columns ``sync_orders`` reads. With
    unique string security ids (a day's orders: one per security) the sort of the rows
    has one outcome, whichever algorithm makes it: it is done on the records."""
    records = _records(orders, _SYNC_FIELDS)
    ids = [r["security_id"] for r in records]
    if all(type(s) is str for s in ids) and len(set(ids)) == len(ids):
        records.sort(key=lambda r: r["security_id"])  # code point order, as pandas' is
        return records
    return _records(orders.sort_values("security_id"), _SYNC_FIELDS)


def _last_prices(frame: pd.DataFrame) -> dict[str, float]:
    """``frame``'s last non-NaN ``price`` per ``security_id``, by security id (the
    groupby's ``last()``). With unique string ids and a float price column, each group
    is its one row: its price (NaN when NaN), in id order, without the groupby."""
    ids, prices = frame["security_id"], frame["price"]
    if pd.api.types.is_float_dtype(prices) and ids.is_unique:
        keys = ids.tolist()
        if all(type(k) is str for k in keys):
            return {k: float(v) for k, v in sorted(zip(keys, prices.tolist(), strict=True))}
    return {str(k): float(v) for k, v in frame.groupby("security_id")["price"].last().items()}


def _frame_reasons(rows: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The ``reject_reason`` values of ``orders_frame(...)`` rows read back with
    ``tolist()``, as the orders' audit has recorded them: pandas stores a column of
    strings and None as strings with NaN for the missing ones (so an accepted order's
    reason is NaN when some order of the batch was rejected), and one of None only as
    None."""
    reasons = [r["reject_reason"] for r in rows]
    if not any(isinstance(x, str) for x in reasons):
        return reasons
    missing = _missing_text()
    return [missing if x is None else x for x in reasons]


_MISSING_TEXT: list[Any] = []


def _missing_text() -> Any:
    """What pandas gives back (``tolist``) for a None among strings: NaN since pandas 3
    (strings inferred as ``str``), None before."""
    if not _MISSING_TEXT:
        _MISSING_TEXT.append(pd.DataFrame({"x": [None, "x"]})["x"].tolist()[0])
    return _MISSING_TEXT[0]


def switch_engaged(limits: RiskLimits, store: Store) -> bool:
    """Whether the kill switch is known to be engaged (flag or lake); False when its state
    cannot be read (then nothing is sent, but nothing is cancelled on a guess either)."""
    if limits.kill_switch:
        return True
    try:
        return read_state(store).engaged
    except KillSwitchUnreadableError:
        return False


def cancel_open_orders(broker: Broker, account: str) -> list[OrderState]:
    """Cancel every order of ``account`` still working at ``broker`` (the kill switch's
    second half). Returns the states after cancelling: ``cancelled``, or terminal with
    fills if the broker filled it first. Every order is tried; the first failure is raised
    after the others were cancelled."""
    broker.connect()
    out: list[OrderState] = []
    failure: Exception | None = None
    for state in broker.open_orders(account):
        try:
            out.append(broker.cancel(state.client_order_id))
        except Exception as exc:  # keep cancelling the others, then report
            log.error("kill switch: cancel of %s failed: %s", state.client_order_id, exc)
            failure = failure or exc
    if failure is not None:
        raise failure
    log.info("kill switch: cancelled %d open orders of %s at %s", len(out), account, broker.name)
    return out


def engage_kill_switch(
    store: Store,
    broker: Broker,
    account: str,
    *,
    reason: str,
    actor: str,
    clock: Callable[[], dt.datetime] | None = None,
) -> tuple[KillSwitchState, list[OrderState]]:
    """Engage the central kill switch (audited in the lake; from then on no process sends
    an order), then cancel every open order of ``account`` at ``broker``. A failure to
    cancel is raised with the switch left engaged."""
    state = engage(store, reason=reason, actor=actor, clock=clock)
    return state, cancel_open_orders(broker, account)


def _send(
    broker: Broker, order: BrokerOrder, maybe_sent: bool, max_reconnects: int, wait: float
) -> tuple[OrderState, bool, int]:
    """Submit ``order`` exactly once at the broker. Returns (state, found_existing, reconnects)."""
    reconnects = 0
    check_first = maybe_sent
    while True:
        try:
            if check_first:
                found = broker.order_status(order.client_order_id)
                if found is not None:
                    return found, True, reconnects
            return broker.submit(order), False, reconnects
        except BrokerConnectionError as exc:
            reconnects += 1
            if reconnects > max_reconnects:
                raise
            log.warning("broker %s connection lost (%s); reconnecting", broker.name, exc)
            # The request may have reached the broker: ask before sending again.
            check_first = True
            if wait:
                time.sleep(wait)
            try:
                broker.close()
                broker.connect()
            except BrokerConnectionError as again:
                log.warning("reconnect to %s failed: %s", broker.name, again)


def restate_for_splits(
    lake: Store,
    targets: pd.DataFrame,
    current: dict[str, float],
    prices: Mapping[str, float] | None,
    trade_date: dt.date,
    *,
    known_at: dt.datetime,
) -> tuple[pd.DataFrame, dict[str, float], Mapping[str, float] | None]:
    """Targets, positions and decision prices in ``trade_date``'s share basis.

    Targets are decided on the evening before the trade date, in shares and prices of that
    evening; a split with its ex-date on the trade date (known at ``known_at``) multiplies
    the held quantity before the orders work (:mod:`.corporate_actions`), and the fills come
    at post-split prices. Without this, the order ``target − current`` would be sized in
    the old basis and leave the position off by the ratio.
    """
    ids = {str(s) for s in targets["security_id"].tolist()} | set(current)
    actions = lake_corporate_actions(
        lake,
        ids,
        known_at=known_at,
        after=trade_date - dt.timedelta(days=1),
        through=trade_date,
    )
    ratios = split_ratios(actions, trade_date)
    if not ratios:
        return targets, current, prices
    frame = targets.copy()
    r = frame["security_id"].astype(str).map(ratios).fillna(1.0).to_numpy(dtype=float)
    frame["target_shares"] = frame["target_shares"].to_numpy(dtype=float) * r
    if "price" in frame:
        frame["price"] = frame["price"].to_numpy(dtype=float) / r
    restated = {s: q * ratios.get(s, 1.0) for s, q in current.items()}
    marks = None if prices is None else {s: p / ratios.get(s, 1.0) for s, p in prices.items()}
    log.info("%s: targets restated for splits on the trade date: %s", trade_date, ratios)
    return frame, restated, marks


def _generate(
    lake: Store,
    portfolio_id: str,
    trade_date: dt.date,
    targets: TargetPortfolio | pd.DataFrame,
    broker: Broker,
    limits: RiskLimits,
    *,
    book: BookState | None,
    nav: float | None,
    current_positions: Mapping[str, float] | None,
    adv: Mapping[str, float] | None,
    sectors: Mapping[str, str] | None,
    prices: Mapping[str, float] | None,
    lot_size: int | Mapping[str, int],
    algo: AlgoInstruction | None,
    clock: Callable[[], dt.datetime],
) -> pd.DataFrame:
    frame = targets_frame(targets)
    if "portfolio_id" in frame and (frame["portfolio_id"].astype(str) != portfolio_id).any():
        raise TargetsError(f"targets are not all for portfolio {portfolio_id}")
    current = dict(
        current_positions if current_positions is not None else broker.positions(portfolio_id)
    )
    frame, current, prices = restate_for_splits(
        lake, frame, current, prices, trade_date, known_at=clock()
    )
    proposed = generate_orders(
        frame,
        current,
        portfolio_id,
        trade_date,
        lot_size=lot_size,
        adv=adv,
        sectors=sectors,
        algo=algo,
        prices=prices,
    )
    if book is None:
        value = nav
        if value is None and isinstance(targets, TargetPortfolio):
            value = targets.portfolio_value
        if value is None and "portfolio_value" in frame and frame["portfolio_value"].notna().any():
            value = float(frame["portfolio_value"].dropna().iloc[0])  # target_portfolios rows
        if value is None or value <= 0:
            raise TargetsError(
                "execute_day needs book=, nav=, a TargetPortfolio or a portfolio_value column"
            )
        marks = _last_prices(frame)
        for sid, px in (prices or {}).items():
            if not math.isfinite(marks.get(sid, math.nan)):
                marks[sid] = float(px)
        book = BookState(
            nav=float(value), positions=current, prices=marks, sectors=dict(sectors or {})
        )
    now = clock()
    verdict = run_pretrade(
        proposed,
        limits,
        book,
        now=now,
        store=lake,
    )
    rows = order_rows(proposed, verdict, broker.name)
    # Audit first (idempotent by content), then the orders commit — the point of no return.
    target_cols = [
        c
        for c in ("security_id", "target_shares", "current_shares", "price", "weight")
        if c in frame
    ]
    received = {
        "event": "targets_received",
        "detail": {
            "rows": _records(frame, target_cols),
            "current_positions": current,
            "nav": book.nav,
        },
    }
    # The targets' and the checks' audit rows (write_audit's rows for each stage) in one
    # idempotent append: one lake commit instead of two. The day's audit keys are read
    # once for it and the orders' audit right after (the appends keep them current).
    audit_keys = stored_keys(lake, "execution_audit", trade_date)
    write_audits(
        lake,
        portfolio_id,
        trade_date,
        [("targets", [received])],
        known_at=now,
        verdict=verdict,
        stored=audit_keys,
    )
    if rows:
        # persist_orders(orders_frame(...)): the same rows, without the frame
        append_records(lake, "orders", rows, trade_date, known_at=now)
        write_audit(
            lake,
            portfolio_id,
            trade_date,
            "orders",
            [
                {
                    "event": f"order_{r['status']}",
                    "client_order_id": r["client_order_id"],
                    "security_id": r["security_id"],
                    "detail": {
                        "side": r["side"],
                        "quantity": r["quantity"],
                        "reason": reason,
                    },
                }
                for r, reason in zip(rows, _frame_reasons(rows), strict=True)
            ],
            known_at=now,
            stored=audit_keys,
        )
    return load_orders(lake, portfolio_id, trade_date)


@dataclass
class SyncResult:
    """What ``sync_orders`` recorded: new events and fills; broker fills not on our orders."""

    events: int
    fills: int
    foreign_fills: list[str]


def sync_orders(
    lake: Store,
    broker: Broker,
    portfolio_id: str,
    trade_date: dt.date,
    *,
    clock: Callable[[], dt.datetime] = now_utc,
    orders: pd.DataFrame | None = None,
) -> SyncResult:
    """Pull order states and fills for the day's orders from the broker into the lake.

    Fills are recorded only for client order ids in our ``orders`` table (a fill on an id
    we never sent is not ours to book — reconciliation reports it as a break); each fill
    and each state change is stored once however often this runs. ``orders``: the day's
    ``orders`` rows of the portfolio as :func:`~.records.read_day` gives them now, when
    the caller has just read them (default: read here).
    """
    broker.connect()
    with consistent_reads(broker):  # one pass of the paper broker, not one per order
        if orders is None:
            orders = load_orders(lake, portfolio_id, trade_date)
        records = _by_security(orders)
        events = read_day(lake, "order_events", trade_date, portfolio_id)
        sent = at_broker(events)
        now = clock()
        new_events: list[dict[str, Any]] = []
        # The orders the broker has, by security id (``orders[isin(sent)]``'s rows).
        asked = [row for row in records if row["client_order_id"] in sent]
        for row in asked:
            state = broker.order_status(str(row["client_order_id"]))
            if state is None:
                continue
            new_events.append(event_row(row, state, broker.name, known_at=state.updated_at or now))
        n_events = 0
        if new_events:
            n_events = append_records(
                lake, "order_events", new_events, trade_date, known_at=now, existing=events
            )
        ours = {c if type(c) is str else str(c) for c in (r["client_order_id"] for r in records)}
        fills = broker.fills(portfolio_id, trade_date)
        rows = [
            {
                "fill_id": f.fill_id,
                "client_order_id": f.client_order_id,
                "broker_order_id": f.broker_order_id,
                "portfolio_id": portfolio_id,
                "security_id": f.security_id,
                "side": f.side,
                "quantity": f.quantity,
                "price": f.price,
                "commission": f.commission,
                "executed_at": f.timestamp,
                "broker": broker.name,
                "known_at": now,
            }
            for f in fills
            if f.client_order_id in ours
        ]
        foreign = [f.fill_id for f in fills if f.client_order_id not in ours]
        n_fills = 0
        if rows:
            n_fills = append_records(lake, "fills", rows, trade_date, known_at=now)
        if n_fills or n_events:
            write_audit(
                lake,
                portfolio_id,
                trade_date,
                "fills",
                [
                    {
                        "event": "fill",
                        "client_order_id": r["client_order_id"],
                        "security_id": r["security_id"],
                        "event_id": r["fill_id"],
                        "detail": {
                            "fill_id": r["fill_id"],
                            "side": r["side"],
                            "quantity": r["quantity"],
                            "price": r["price"],
                        },
                    }
                    for r in rows
                ]
                + [
                    {
                        "event": e["event_type"],
                        "client_order_id": e["client_order_id"],
                        "security_id": e["security_id"],
                        "event_id": e["event_id"],
                        "detail": {"status": e["status"], "filled": e["filled_quantity"]},
                    }
                    for e in new_events
                ],
                known_at=now,
            )
        return SyncResult(events=n_events, fills=n_fills, foreign_fills=foreign)


__all__ = [
    "AT_BROKER_EVENTS",
    "ExecutionReport",
    "SyncResult",
    "at_broker",
    "cancel_open_orders",
    "engage_kill_switch",
    "event_row",
    "execute_day",
    "switch_engaged",
    "sync_orders",
]
