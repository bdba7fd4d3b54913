"""FIX 4.4 broker over QuickFIX (a session initiator) implementing :class:`Broker`.

Session: ``connect()`` starts a QuickFIX ``SocketInitiator`` and waits for the Logon;
QuickFIX sends heartbeats (``HeartBtInt``) and answers test requests; ``close()`` logs out.
The ``FileStore`` under ``data_dir/store`` keeps sequence numbers and sent messages, so a
restarted process continues the session (no reset) and a gap after a reconnect is filled
by ResendRequest — execution reports the broker sent while we were away arrive then.

Orders are **never re-sent automatically**: a NewOrderSingle that QuickFIX would replay
in a resend is turned into a gap fill (``DoNotSend`` on PossDupFlag), because whether to
re-send is decided above, by asking the broker (OrderStatusRequest) first.

Messages:

* ``submit`` → NewOrderSingle (D): ClOrdID = our client order id, Account, Symbol, Side,
  OrderQty, OrdType (1 market / 2 limit, Price), TimeInForce 0 (day), TradeDate, and the
  algorithm as TargetStrategy/TargetStrategyParameters/ParticipationRate (847/848/849, see
  :mod:`.fix_session`); waits for the ExecutionReport ``new`` or ``rejected``.
* ``cancel`` → OrderCancelRequest (F); waits for ``canceled`` or OrderCancelReject (9).
* ``order_status`` → the state built from execution reports, after a TestRequest round
  trip (so everything the broker sent before is processed); for an id we hold no report
  for, an OrderStatusRequest (H) — ``None`` only when the broker answers "unknown order".
* ``positions`` → RequestForPositions (AN) → RequestForPositionsAck (AO) + PositionReports
  (AP).
* ``cash`` → CollateralInquiry (BB: CollInquiryID, Account, SubscriptionRequestType 0 =
  snapshot) → CollateralReport (BA) whose CashOutstanding (901) is the balance. A rejecting
  CollateralInquiryAck (BG, CollInquiryStatus 4) raises :class:`BrokerError` (e.g. an
  unknown account), except CollInquiryResult 8 "not supported": then ``None``.
* ``fills`` → every ExecutionReport with ExecType F (trade), de-duplicated by ExecID.

Every execution report received is appended to ``data_dir/executions.jsonl`` before it is
applied, and replayed on start, so order states and fills survive a restart.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipelines.execution.broker import (
    BrokerConnectionError,
    BrokerError,
    BrokerOrder,
    Fill,
    OrderState,
)
from pipelines.execution.fix_session import (
    COLL_INQUIRY_NOT_SUPPORTED,
    COLL_INQUIRY_REJECTED,
    ORD_REJ_UNKNOWN_ORDER,
    ORD_STATUS_OF_CODE,
    SIDE_CODE,
    SIDE_OF_CODE,
    ExecType,
    MsgType,
    Tag,
    algo_fields,
    fix_date,
    get,
    load_quickfix,
    msg_type,
    new_message,
    parse_fix_date,
    parse_utc_timestamp,
    party_group,
    session_settings,
    set_fields,
    utc_timestamp,
)

log = logging.getLogger(__name__)

_REPORT_TAGS = (
    Tag.ORDER_ID,
    Tag.CL_ORD_ID,
    Tag.ORIG_CL_ORD_ID,
    Tag.EXEC_ID,
    Tag.EXEC_TYPE,
    Tag.ORD_STATUS,
    Tag.ACCOUNT,
    Tag.SYMBOL,
    Tag.SIDE,
    Tag.ORDER_QTY,
    Tag.LEAVES_QTY,
    Tag.CUM_QTY,
    Tag.AVG_PX,
    Tag.LAST_QTY,
    Tag.LAST_PX,
    Tag.COMMISSION,
    Tag.TRADE_DATE,
    Tag.TRANSACT_TIME,
    Tag.TEXT,
    Tag.ORD_REJ_REASON,
)


class FixBroker:
    """FIX 4.4 session to a broker (see module doc).

    ``timeout`` bounds every request/response wait (ack, cancel, status, positions, cash);
    ``logon_timeout`` the wait for the Logon in :meth:`connect`.
    """

    name = "fix"

    def __init__(
        self,
        data_dir: str | Path,
        *,
        port: int,
        host: str = "127.0.0.1",
        sender_comp_id: str = "AF",
        target_comp_id: str = "SIMBROKER",
        heartbeat: int = 30,
        timeout: float = 10.0,
        logon_timeout: float = 10.0,
    ) -> None:
        self.qf = load_quickfix()
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.host, self.port = host, port
        self.sender_comp_id, self.target_comp_id = sender_comp_id, target_comp_id
        self.heartbeat = heartbeat
        self.timeout = timeout
        self.logon_timeout = logon_timeout
        self.session_id = self.qf.SessionID("FIX.4.4", sender_comp_id, target_comp_id)
        self.heartbeats_received = 0
        self.resend_requests_sent = 0
        self.logons = 0
        self.orders_withheld = 0  # NewOrderSingles a resend turned into gap fills
        self._cond = threading.Condition(threading.RLock())
        self._initiator: Any = None
        self._logged_on = False
        self._orders: dict[str, OrderState] = {}
        self._order_info: dict[str, dict[str, str]] = {}
        self._fills: dict[str, Fill] = {}
        self._seen_exec: set[str] = set()
        self._unknown: set[str] = set()
        self._status_replies: set[str] = set()
        self._cancel_replies: dict[str, str | None] = {}
        self._test_replies: set[str] = set()
        self._pos_expected: dict[str, int] = {}
        self._pos_reports: dict[str, dict[str, float]] = {}
        self._coll_replies: dict[str, dict[int, str]] = {}  # by CollInquiryID
        self._journal = self.data_dir / "executions.jsonl"
        self._intents = self.data_dir / "orders_sent.jsonl"
        self._replay()

    # ---- session ---------------------------------------------------------------------

    def connect(self) -> None:
        """Start the initiator and wait for Logon; :class:`BrokerConnectionError` if none."""
        if self._initiator is not None and self.logged_on:
            return
        if self._initiator is None:
            qf = self.qf
            cfg = session_settings(
                self.data_dir / "initiator.cfg",
                "initiator",
                sender=self.sender_comp_id,
                target=self.target_comp_id,
                port=self.port,
                host=self.host,
                heartbeat=self.heartbeat,
                data_dir=self.data_dir,
            )
            # QuickFIX keeps raw pointers to these: they must outlive the initiator.
            self._settings = qf.SessionSettings(str(cfg))
            self._app = _make_app(qf, self)
            self._factories = (
                qf.FileStoreFactory(self._settings),
                qf.FileLogFactory(self._settings),
            )
            self._initiator = qf.SocketInitiator(
                self._app, self._factories[0], self._settings, self._factories[1]
            )
            self._initiator.start()
        if not self._wait(lambda: self._logged_on, self.logon_timeout):
            self.close()
            raise BrokerConnectionError(
                f"FIX logon to {self.host}:{self.port} ({self.target_comp_id}) timed out"
            )

    def close(self) -> None:
        """Log out and stop the initiator (idempotent); the store keeps the sequence numbers."""
        initiator, self._initiator = self._initiator, None
        if initiator is not None:
            # Log out and wait in Python before stop() (see FixAcceptor.stop for why).
            session = self.qf.Session.lookupSession(self.session_id)
            if session is not None and session.isLoggedOn():
                session.logout("client closing")
                self._wait(lambda: not self._logged_on, 5.0)
            initiator.stop(True)  # already logged out: don't let QuickFIX poll for it
        with self._cond:
            self._logged_on = False
            self._cond.notify_all()

    def __enter__(self) -> FixBroker:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def logged_on(self) -> bool:
        return self._logged_on

    @property
    def next_sender_seq(self) -> int:
        """MsgSeqNum our next message will carry (from the persistent store)."""
        return int(self._session().getExpectedSenderNum())

    @property
    def next_target_seq(self) -> int:
        """MsgSeqNum we expect from the broker next."""
        return int(self._session().getExpectedTargetNum())

    def _session(self) -> Any:
        session = self.qf.Session.lookupSession(self.session_id)
        if session is None:
            raise BrokerConnectionError("FIX session not created (call connect())")
        return session

    def _require(self) -> None:
        if not self._logged_on:
            raise BrokerConnectionError(f"FIX session to {self.target_comp_id} is not logged on")

    def _wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def _await(self, predicate: Callable[[], bool], what: str) -> None:
        """Wait for ``predicate``; a lost session or a timeout is a connection error (the
        request may or may not have reached the broker)."""
        ok = self._wait(lambda: predicate() or not self._logged_on, self.timeout)
        if ok and predicate():
            return
        state = "session lost" if not self._logged_on else f"no answer in {self.timeout:g}s"
        raise BrokerConnectionError(f"FIX {what}: {state}")

    def _send(self, msg: Any, what: str) -> None:
        self._require()
        if not self.qf.Session.sendToTarget(msg, self.session_id):
            raise BrokerConnectionError(f"FIX {what}: not sent (session down)")

    def sync(self) -> None:
        """TestRequest → Heartbeat round trip: afterwards every message the broker sent
        before our request has been processed."""
        self._require()
        req = f"sync-{uuid.uuid4().hex[:12]}"
        msg = new_message(self.qf, MsgType.TEST_REQUEST)
        msg.setField(Tag.TEST_REQ_ID, req)
        self._send(msg, "test request")
        self._await(lambda: req in self._test_replies, "test request")

    # ---- orders ----------------------------------------------------------------------

    def submit(self, order: BrokerOrder) -> OrderState:
        self._require()
        cid = order.client_order_id
        with self._cond:
            if cid in self._orders:
                return self._orders[cid]
        info = {
            "account": order.account,
            "security_id": order.security_id,
            "side": order.side,
            "quantity": f"{order.quantity:g}",
            "trade_date": order.trade_date.isoformat(),
        }
        self._record_intent(cid, info)
        msg = self.new_order_message(order)
        self._send(msg, f"new order {cid}")
        self._await(lambda: cid in self._orders, f"acknowledgement of {cid}")
        with self._cond:
            return self._orders[cid]

    def new_order_message(self, order: BrokerOrder) -> Any:
        """The NewOrderSingle (D) for ``order`` (see module doc for the fields)."""
        msg = new_message(self.qf, MsgType.NEW_ORDER_SINGLE)
        fields = {
            Tag.CL_ORD_ID: order.client_order_id,
            Tag.ACCOUNT: order.account,
            Tag.HANDL_INST: "1",
            Tag.SYMBOL: order.security_id,
            Tag.SIDE: SIDE_CODE[order.side],
            Tag.TRANSACT_TIME: utc_timestamp(),
            Tag.ORDER_QTY: f"{order.quantity:g}",
            Tag.ORD_TYPE: "2" if order.order_type == "limit" else "1",
            Tag.TIME_IN_FORCE: "0",
            Tag.TRADE_DATE: fix_date(order.trade_date),
            **algo_fields(order.algo),
        }
        if order.order_type == "limit" and order.limit_price is not None:
            fields[Tag.PRICE] = f"{order.limit_price:g}"
        set_fields(msg, fields)
        return msg

    def cancel(self, client_order_id: str) -> OrderState:
        self._require()
        info = self._order_info.get(client_order_id, {})
        cancel_id = f"{client_order_id}C{uuid.uuid4().hex[:6]}"
        msg = new_message(self.qf, MsgType.ORDER_CANCEL_REQUEST)
        set_fields(
            msg,
            {
                Tag.ORIG_CL_ORD_ID: client_order_id,
                Tag.CL_ORD_ID: cancel_id,
                Tag.ACCOUNT: info.get("account") or "N/A",
                Tag.SYMBOL: info.get("security_id", "N/A"),
                Tag.SIDE: SIDE_CODE.get(info.get("side", "buy"), "1"),
                Tag.ORDER_QTY: info.get("quantity", "0"),
                Tag.TRANSACT_TIME: utc_timestamp(),
            },
        )
        self._send(msg, f"cancel {client_order_id}")
        self._await(lambda: cancel_id in self._cancel_replies, f"cancel of {client_order_id}")
        reject = self._cancel_replies.pop(cancel_id)
        if reject == "unknown order":
            raise BrokerError(f"cancel: unknown client order id {client_order_id}")
        state = self.order_status(client_order_id)
        if state is None:  # pragma: no cover - the broker just answered for it
            raise BrokerError(f"cancel: broker lost order {client_order_id}")
        return state

    def open_orders(self, account: str) -> list[OrderState]:
        """Working orders of ``account`` we sent (our intent journal survives restarts),
        after a round trip so every report the broker sent before is applied."""
        self.sync()
        with self._cond:
            mine = [c for c, info in self._order_info.items() if info.get("account") == account]
            states = [self._orders.get(c) for c in mine]
        out: list[OrderState] = []
        for cid, state in zip(mine, states, strict=True):
            if state is None:  # sent, never acknowledged: ask the broker
                state = self.order_status(cid)
            if state is not None and not state.status.terminal:
                out.append(state)
        return out

    def order_status(self, client_order_id: str) -> OrderState | None:
        self._require()
        cid = client_order_id
        with self._cond:
            known = cid in self._orders
        if known:
            self.sync()
            with self._cond:
                return self._orders[cid]
        info = self._order_info.get(cid, {})
        msg = new_message(self.qf, MsgType.ORDER_STATUS_REQUEST)
        set_fields(
            msg,
            {
                Tag.CL_ORD_ID: cid,
                Tag.SYMBOL: info.get("security_id", "N/A"),
                Tag.SIDE: SIDE_CODE.get(info.get("side", "buy"), "1"),
            },
        )
        with self._cond:
            self._status_replies.discard(cid)
        self._send(msg, f"status of {cid}")
        self._await(lambda: cid in self._status_replies, f"status of {cid}")
        with self._cond:
            return None if cid in self._unknown else self._orders.get(cid)

    # ---- account ---------------------------------------------------------------------

    def positions(self, account: str) -> dict[str, float]:
        self._require()
        req = f"pos-{uuid.uuid4().hex[:12]}"
        msg = new_message(self.qf, MsgType.REQUEST_FOR_POSITIONS)
        set_fields(
            msg,
            {
                Tag.POS_REQ_ID: req,
                Tag.POS_REQ_TYPE: "0",
                Tag.ACCOUNT: account,
                Tag.ACCOUNT_TYPE: "1",
                Tag.CLEARING_BUSINESS_DATE: fix_date(dt.date.today()),
                Tag.TRANSACT_TIME: utc_timestamp(),
            },
        )
        msg.addGroup(party_group(self.qf, self.sender_comp_id))
        self._send(msg, "request for positions")

        def complete() -> bool:
            n = self._pos_expected.get(req)
            return n is not None and len(self._pos_reports.get(req, {})) >= n

        self._await(complete, "position reports")
        with self._cond:
            self._pos_expected.pop(req, None)
            out = self._pos_reports.pop(req, {})
        return {s: q for s, q in sorted(out.items()) if abs(q) > 1e-9}

    def fills(self, account: str, trade_date: dt.date | None = None) -> list[Fill]:
        self.sync()
        with self._cond:
            out = [f for f in self._fills.values() if f.account == account]
        if trade_date is not None:
            out = [f for f in out if f.trade_date == trade_date]
        return sorted(out, key=lambda f: (f.timestamp, f.fill_id))

    def cash(self, account: str) -> float | None:
        """The broker's cash balance for ``account``: CashOutstanding of the CollateralReport
        answering our CollateralInquiry. ``None`` when the broker does not report cash (the
        inquiry is "not supported", or the report carries no CashOutstanding);
        :class:`BrokerError` when it rejects the inquiry otherwise — an unknown account must
        not pass for "cash not reported", which reconciliation would only mark unverified."""
        self._require()
        inquiry = f"coll-{uuid.uuid4().hex[:12]}"
        msg = new_message(self.qf, MsgType.COLLATERAL_INQUIRY)
        set_fields(
            msg,
            {
                Tag.COLL_INQUIRY_ID: inquiry,
                Tag.SUBSCRIPTION_REQUEST_TYPE: "0",
                Tag.ACCOUNT: account,
            },
        )
        self._send(msg, "collateral inquiry")
        self._await(lambda: inquiry in self._coll_replies, "collateral report")
        with self._cond:
            reply = self._coll_replies.pop(inquiry)
        if reply[Tag.MSG_TYPE] == MsgType.COLLATERAL_REPORT:
            balance = reply.get(Tag.CASH_OUTSTANDING)
            return None if balance is None else float(balance)
        if reply.get(Tag.COLL_INQUIRY_RESULT) == COLL_INQUIRY_NOT_SUPPORTED:
            return None
        reason = reply.get(Tag.TEXT, "no reason given")
        raise BrokerError(f"cash of {account}: the broker rejected the inquiry ({reason})")

    # ---- inbound (QuickFIX threads) --------------------------------------------------

    def on_logon(self) -> None:
        with self._cond:
            self._logged_on = True
            self.logons += 1
            self._cond.notify_all()

    def on_logout(self) -> None:
        with self._cond:
            self._logged_on = False
            self._cond.notify_all()

    def on_admin(self, msg: Any) -> None:
        if msg_type(self.qf, msg) == MsgType.REJECT:
            log.error("FIX: the broker rejected our message: %s", get(msg, Tag.TEXT))
        if msg_type(self.qf, msg) == MsgType.HEARTBEAT:
            with self._cond:
                self.heartbeats_received += 1
                req = get(msg, Tag.TEST_REQ_ID)
                if req:
                    self._test_replies.add(req)
                self._cond.notify_all()

    def on_app(self, msg: Any) -> None:
        kind = msg_type(self.qf, msg)
        if kind == MsgType.EXECUTION_REPORT:
            report = {str(t): v for t in _REPORT_TAGS if (v := get(msg, t)) is not None}
            if report.get(str(Tag.EXEC_TYPE)) != ExecType.ORDER_STATUS:
                with self._journal.open("a") as fh:
                    fh.write(json.dumps(report) + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())
            self._apply(report)
        elif kind == MsgType.ORDER_CANCEL_REJECT:
            with self._cond:
                cancel_id = str(get(msg, Tag.CL_ORD_ID))
                self._cancel_replies[cancel_id] = get(msg, Tag.TEXT, "rejected")
                self._cond.notify_all()
        elif kind == MsgType.REQUEST_FOR_POSITIONS_ACK:
            with self._cond:
                req = str(get(msg, Tag.POS_REQ_ID))
                self._pos_expected[req] = int(str(get(msg, Tag.TOTAL_NUM_POS_REPORTS, "0")))
                self._pos_reports.setdefault(req, {})
                self._cond.notify_all()
        elif kind == MsgType.POSITION_REPORT:
            group = self.qf.Group(Tag.NO_POSITIONS, Tag.POS_TYPE)
            try:
                msg.getGroup(1, group)
            except Exception:  # parsed without a data dictionary: the fields are flat
                group = msg
            qty = float(str(get(group, Tag.LONG_QTY, "0"))) - float(
                str(get(group, Tag.SHORT_QTY, "0"))
            )
            with self._cond:
                req = str(get(msg, Tag.POS_REQ_ID))
                self._pos_reports.setdefault(req, {})[str(get(msg, Tag.SYMBOL))] = qty
                self._cond.notify_all()
        elif kind in (MsgType.COLLATERAL_REPORT, MsgType.COLLATERAL_INQUIRY_ACK):
            if (
                kind == MsgType.COLLATERAL_INQUIRY_ACK
                and get(msg, Tag.COLL_INQUIRY_STATUS) != COLL_INQUIRY_REJECTED
            ):
                return  # an accepting ack: the CollateralReport follows
            reply = {
                t: v
                for t in (Tag.CASH_OUTSTANDING, Tag.COLL_INQUIRY_RESULT, Tag.TEXT)
                if (v := get(msg, t)) is not None
            }
            reply[Tag.MSG_TYPE] = kind
            with self._cond:
                self._coll_replies[str(get(msg, Tag.COLL_INQUIRY_ID))] = reply
                self._cond.notify_all()
        else:
            log.warning("FIX: ignoring message type %s", kind)

    def _apply(self, r: dict[str, str]) -> None:
        """Fold one execution report into order states and fills (idempotent by ExecID)."""
        exec_type = r.get(str(Tag.EXEC_TYPE), "")
        exec_id = r.get(str(Tag.EXEC_ID), "")
        cl = r.get(str(Tag.CL_ORD_ID), "")
        orig = r.get(str(Tag.ORIG_CL_ORD_ID))
        cid = orig if exec_type == ExecType.CANCELED and orig else cl
        with self._cond:
            if exec_type == ExecType.ORDER_STATUS:
                self._status_replies.add(cid)
                if (
                    r.get(str(Tag.ORD_REJ_REASON)) == ORD_REJ_UNKNOWN_ORDER
                    and r.get(str(Tag.ORDER_ID)) == "NONE"
                ):
                    self._unknown.add(cid)
                    self._cond.notify_all()
                    return
                self._unknown.discard(cid)
            elif exec_id in self._seen_exec:
                return  # a resent (PossDup) report we already applied
            else:
                self._seen_exec.add(exec_id)
            if exec_type == ExecType.CANCELED:
                self._cancel_replies[cl] = None
            status = ORD_STATUS_OF_CODE.get(r.get(str(Tag.ORD_STATUS), ""))
            prev = self._orders.get(cid)
            if status is not None:
                cum = float(r.get(str(Tag.CUM_QTY), "0"))
                # Status answers can interleave with reports: never move backwards
                # (less filled, or from a terminal state back to a working one).
                forward = prev is None or cum > prev.filled_quantity + 1e-9
                same = prev is not None and abs(cum - prev.filled_quantity) <= 1e-9
                if forward or (same and not (prev.status.terminal and not status.terminal)):  # type: ignore[union-attr]
                    avg = float(r.get(str(Tag.AVG_PX), "0"))
                    ts = r.get(str(Tag.TRANSACT_TIME))
                    self._orders[cid] = OrderState(
                        client_order_id=cid,
                        status=status,
                        quantity=float(r.get(str(Tag.ORDER_QTY), "0")),
                        filled_quantity=cum,
                        avg_price=avg if cum > 0 else None,
                        broker_order_id=r.get(str(Tag.ORDER_ID)),
                        reason=r.get(str(Tag.TEXT)),
                        updated_at=parse_utc_timestamp(ts) if ts else None,
                    )
            if exec_type == ExecType.TRADE:
                trade_date = r.get(str(Tag.TRADE_DATE))
                ts = r.get(str(Tag.TRANSACT_TIME))
                self._fills[exec_id] = Fill(
                    fill_id=exec_id,
                    client_order_id=cid,
                    account=r.get(str(Tag.ACCOUNT), ""),
                    trade_date=parse_fix_date(trade_date) if trade_date else dt.date.today(),
                    security_id=r.get(str(Tag.SYMBOL), ""),
                    side="buy" if SIDE_OF_CODE.get(r.get(str(Tag.SIDE), "")) == "buy" else "sell",
                    quantity=float(r.get(str(Tag.LAST_QTY), "0")),
                    price=float(r.get(str(Tag.LAST_PX), "0")),
                    timestamp=parse_utc_timestamp(ts) if ts else dt.datetime.now(dt.UTC),
                    commission=float(r.get(str(Tag.COMMISSION), "0")),
                    broker_order_id=r.get(str(Tag.ORDER_ID)),
                )
            self._cond.notify_all()

    # ---- persistence -----------------------------------------------------------------

    def _record_intent(self, cid: str, info: dict[str, str]) -> None:
        with self._cond:
            self._order_info[cid] = info
        with self._intents.open("a") as fh:
            fh.write(json.dumps({"client_order_id": cid, **info}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def _replay(self) -> None:
        if self._intents.exists():
            for line in self._intents.read_text().splitlines():
                if line.strip():
                    rec = json.loads(line)
                    self._order_info[rec.pop("client_order_id")] = rec
        if self._journal.exists():
            for line in self._journal.read_text().splitlines():
                if line.strip():
                    self._apply(json.loads(line))


def _make_app(qf: Any, broker: FixBroker) -> Any:
    class _InitiatorApp(qf.Application):  # type: ignore[misc,name-defined]
        def onCreate(self, sessionID: Any) -> None:  # noqa: N802 (QuickFIX callback)
            pass

        def onLogon(self, sessionID: Any) -> None:  # noqa: N802 (QuickFIX callback)
            log.info("FIX: logged on %s", sessionID)
            broker.on_logon()

        def onLogout(self, sessionID: Any) -> None:  # noqa: N802 (QuickFIX callback)
            log.info("FIX: logged out %s", sessionID)
            broker.on_logout()

        def toAdmin(self, message: Any, sessionID: Any) -> None:  # noqa: N802 (QuickFIX callback)
            if msg_type(qf, message) == "2":
                broker.resend_requests_sent += 1

        def fromAdmin(self, message: Any, sessionID: Any) -> None:  # noqa: N802 (QuickFIX callback)
            broker.on_admin(message)

        def toApp(self, message: Any, sessionID: Any) -> None:  # noqa: N802 (QuickFIX callback)
            header = message.getHeader()
            if (
                msg_type(qf, message) == MsgType.NEW_ORDER_SINGLE
                and header.isSetField(Tag.POSS_DUP_FLAG)
                and str(header.getField(Tag.POSS_DUP_FLAG)) == "Y"
            ):
                # Orders are re-sent only after asking the broker (execute_day does).
                broker.orders_withheld += 1
                raise qf.DoNotSend()

        def fromApp(self, message: Any, sessionID: Any) -> None:  # noqa: N802 (QuickFIX callback)
            try:
                broker.on_app(message)
            except Exception:
                log.exception("FIX: failed to handle %s", message.toString())

    return _InitiatorApp()


__all__ = ["FixBroker"]
