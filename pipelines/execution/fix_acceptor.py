"""A FIX 4.4 broker simulator (QuickFIX acceptor) on loopback.

It accepts one FIX session (default ``SIMBROKER`` ← ``AF``) and works orders with the
paper broker's engine (:class:`~pipelines.execution.paper.PaperBroker`, ``auto_work``
off): the same fills, prices, partial fills and expiries as the paper broker, so the FIX
path and the paper path can pass the same lifecycle tests. Everything it tells the client
is a real FIX message:

* NewOrderSingle (D) → ExecutionReport ``new`` (150=0) or ``rejected`` (150=8, 58=reason).
  A ClOrdID it already holds is answered with the order's status (150=I), never a second
  order (brokers that de-duplicate do the same).
* OrderCancelRequest (F) → ExecutionReport ``canceled`` (150=4) or OrderCancelReject (9).
* OrderStatusRequest (H) → ExecutionReport 150=I; an unknown ClOrdID gets 39=8, 103=5.
* RequestForPositions (AN) → RequestForPositionsAck (AO) and one PositionReport (AP) per
  security.
* CollateralInquiry (BB) → one CollateralReport (BA) with the engine's cash balance as
  CashOutstanding (901, in USD); for an account outside ``accounts`` a
  CollateralInquiryAck (BG) with CollInquiryStatus 4 (rejected), 58 = "unknown account".
* :meth:`FixAcceptor.work` runs the session (fills everything whose prices are known) and
  publishes one ExecutionReport per execution (150=F, partial then filled) and one per
  expiry (150=C). Reports produced while the client is offline are stored and delivered
  by QuickFIX's resend when it logs on again.

Fault knobs for tests: :meth:`drop` cuts the TCP connection; ``drop_on_orders`` cuts it
right after the N-th NewOrderSingle was booked but *before* its acknowledgement goes out.

Run standalone: ``python -m pipelines.execution.fix_acceptor --port 9878 --data-dir var/fixsim``
(prices from the lake).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipelines.execution.broker import (
    AlgoInstruction,
    BrokerOrder,
    Fill,
    OrderState,
    OrderStatus,
)
from pipelines.execution.fix_session import (
    COLL_INQUIRY_REJECTED,
    ORD_REJ_UNKNOWN_ORDER,
    ORD_STATUS_CODE,
    SIDE_CODE,
    SIDE_OF_CODE,
    ExecType,
    MsgType,
    Tag,
    algo_from_fields,
    fix_date,
    get,
    load_quickfix,
    msg_type,
    new_message,
    parse_fix_date,
    party_group,
    session_settings,
    set_fields,
    utc_timestamp,
)
from pipelines.execution.paper import PaperBroker
from pipelines.execution.prices import CostModel, PriceSource
from pipelines.net import free_port

log = logging.getLogger(__name__)


class FixAcceptor:
    """The loopback FIX broker simulator (see module doc).

    ``data_dir`` holds the engine state, the QuickFIX store/logs and the ledger of
    published execution ids, so a restarted simulator continues the same session and
    never publishes an execution twice. ``accounts`` are the accounts it holds, for the
    collateral inquiry; ``None`` means any (the engine opens an account on first use).
    """

    def __init__(
        self,
        data_dir: str | Path,
        prices: PriceSource,
        *,
        port: int | None = None,
        sender_comp_id: str = "SIMBROKER",
        target_comp_id: str = "AF",
        cost_model: CostModel | None = None,
        max_volume_share: float = 0.10,
        slices: int = 3,
        reject_if: Callable[[BrokerOrder], str | None] | None = None,
        initial_cash: float = 0.0,
        accounts: Iterable[str] | None = None,
    ) -> None:
        self.qf = load_quickfix()
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.sender_comp_id = sender_comp_id
        self.target_comp_id = target_comp_id
        self.engine = PaperBroker(
            self.data_dir / "engine.json",
            prices,
            cost_model=cost_model,
            max_volume_share=max_volume_share,
            slices=slices,
            reject_if=reject_if,
            initial_cash=initial_cash,
            auto_work=False,
        )
        self.engine.connect()
        self.accounts = None if accounts is None else set(accounts)
        self.drop_on_orders: set[int] = set()
        self.orders_received = 0  # distinct orders booked
        self.new_order_messages = 0  # every NewOrderSingle on the wire, duplicates included
        self._lock = threading.RLock()
        self._ledger_path = self.data_dir / "published.json"
        self._published: set[str] = (
            set(json.loads(self._ledger_path.read_text())) if self._ledger_path.exists() else set()
        )
        self._acceptor: Any = None
        self._loop: threading.Thread | None = None
        self._stopping = threading.Event()
        self.poll_interval = 0.002  # seconds between polls of the QuickFIX acceptor
        self._threads: list[threading.Thread] = []
        self.session_id = self.qf.SessionID("FIX.4.4", self.sender_comp_id, self.target_comp_id)

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> FixAcceptor:
        """Listen on ``127.0.0.1:port`` (idempotent); returns once the port is open.

        QuickFIX runs in **poll mode** on one Python thread that also stops it: QuickFIX
        1.16's threaded ``Acceptor::stop`` frees its socket server while its own thread may
        still close it (a use-after-free that segfaults the interpreter), and poll mode
        has no second thread.
        """
        if self._loop is not None:
            return self
        qf = self.qf
        cfg = session_settings(
            self.data_dir / "acceptor.cfg",
            "acceptor",
            sender=self.sender_comp_id,
            target=self.target_comp_id,
            port=self.port,
            data_dir=self.data_dir,
        )
        # QuickFIX keeps raw pointers to these: they must outlive the acceptor.
        self._settings = qf.SessionSettings(str(cfg))
        self._app = _make_app(qf, self)
        self._factories = (qf.FileStoreFactory(self._settings), qf.FileLogFactory(self._settings))
        self._acceptor = qf.SocketAcceptor(
            self._app, self._factories[0], self._settings, self._factories[1]
        )
        self._stopping.clear()
        ready = threading.Event()
        failure: list[BaseException] = []

        def loop() -> None:
            acceptor = self._acceptor
            try:
                acceptor.poll()  # the first poll configures the session and listens
            except BaseException as exc:
                failure.append(exc)
                return
            finally:
                ready.set()
            while not self._stopping.is_set():
                acceptor.poll()
                time.sleep(self.poll_interval)
            session = qf.Session.lookupSession(self.session_id)
            if session is not None and session.isLoggedOn():
                session.logout("simulator stopping")
                deadline = time.monotonic() + 5.0
                while session.isLoggedOn() and time.monotonic() < deadline:
                    acceptor.poll()
                    time.sleep(self.poll_interval)
            acceptor.stop(True)

        self._loop = threading.Thread(target=loop, name=f"fixsim-{self.port}", daemon=True)
        self._loop.start()
        ready.wait(30)
        if failure:
            self._loop = None
            raise failure[0]
        return self

    def stop(self) -> None:
        """Log the client out and stop listening; state on disk survives."""
        for t in self._threads:
            t.join(timeout=5)
        self._threads.clear()
        if self._loop is not None:
            self._stopping.set()
            self._loop.join(timeout=15)
            self._loop = None
            self._acceptor = None

    def __enter__(self) -> FixAcceptor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def logged_on(self) -> bool:
        session = self.qf.Session.lookupSession(self.session_id)
        return bool(session is not None and session.isLoggedOn())

    def drop(self) -> None:
        """Cut the TCP connection without a Logout (the client will reconnect)."""
        session = self.qf.Session.lookupSession(self.session_id)
        if session is not None:
            session.disconnect()

    # ---- the simulated session -------------------------------------------------------

    def work(self, trade_date: dt.date | None = None) -> int:
        """Work the session(s) whose prices are known and publish the resulting execution
        reports; returns the number of reports published."""
        with self._lock:
            self.engine.work(trade_date)
            return self.publish()

    def publish(self) -> int:
        """Send every execution (150=F) and expiry (150=C) not yet published."""
        with self._lock:
            orders, fills = self.engine.snapshot()
            by_order: dict[str, list[Fill]] = {}
            for f in fills:
                by_order.setdefault(f.client_order_id, []).append(f)
            sent = 0
            for rec in orders:
                cum, notional = 0.0, 0.0
                qty = float(rec["quantity"])
                for f in by_order.get(rec["client_order_id"], []):
                    cum += f.quantity
                    notional += f.quantity * f.price
                    if f.fill_id in self._published:
                        continue
                    done = cum >= qty - 1e-9
                    self._send_report(
                        rec,
                        exec_id=f.fill_id,
                        exec_type=ExecType.TRADE,
                        status=OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED,
                        cum=cum,
                        avg=notional / cum,
                        leaves=0.0 if done else qty - cum,
                        last=(f.quantity, f.price, f.commission),
                        transact=f.timestamp,
                    )
                    sent += 1
                expiry_id = f"{rec['broker_order_id']}-E"
                if rec["status"] == OrderStatus.EXPIRED.value and expiry_id not in self._published:
                    self._send_report(
                        rec,
                        exec_id=expiry_id,
                        exec_type=ExecType.EXPIRED,
                        status=OrderStatus.EXPIRED,
                        cum=cum,
                        avg=notional / cum if cum else 0.0,
                        leaves=0.0,
                        text=rec.get("reason"),
                    )
                    sent += 1
            return sent

    # ---- inbound ---------------------------------------------------------------------

    def on_message(self, msg: Any) -> None:
        """Dispatch one application message from the client."""
        kind = msg_type(self.qf, msg)
        with self._lock:
            if kind == MsgType.NEW_ORDER_SINGLE:
                self._on_new_order(msg)
            elif kind == MsgType.ORDER_CANCEL_REQUEST:
                self._on_cancel(msg)
            elif kind == MsgType.ORDER_STATUS_REQUEST:
                self._on_status(msg)
            elif kind == MsgType.REQUEST_FOR_POSITIONS:
                self._on_positions(msg)
            elif kind == MsgType.COLLATERAL_INQUIRY:
                self._on_collateral_inquiry(msg)
            else:
                log.warning("simulator: ignoring message type %s", kind)

    def _on_new_order(self, msg: Any) -> None:
        self.new_order_messages += 1
        cid = str(get(msg, Tag.CL_ORD_ID))
        existing = self.engine.order_status(cid)
        if existing is not None:
            self._send_status(cid, existing)
            return
        fields = {
            t: v
            for t in (Tag.TARGET_STRATEGY, Tag.TARGET_STRATEGY_PARAMETERS, Tag.PARTICIPATION_RATE)
            if (v := get(msg, t)) is not None
        }
        bad: str | None = None
        try:
            algo = algo_from_fields(fields)
        except ValueError as exc:
            algo, bad = AlgoInstruction(), str(exc)
        price = get(msg, Tag.PRICE)
        trade_date = get(msg, Tag.TRADE_DATE)
        order = BrokerOrder(
            client_order_id=cid,
            account=str(get(msg, Tag.ACCOUNT, "")),
            trade_date=parse_fix_date(trade_date) if trade_date else dt.date.today(),
            security_id=str(get(msg, Tag.SYMBOL)),
            side="buy" if SIDE_OF_CODE.get(str(get(msg, Tag.SIDE))) == "buy" else "sell",
            quantity=float(str(get(msg, Tag.ORDER_QTY, "0"))),
            order_type="limit" if get(msg, Tag.ORD_TYPE) == "2" else "market",
            limit_price=float(price) if price else None,
            algo=algo,
        )
        if bad is not None:
            order = replace(order, quantity=math.nan)  # the engine rejects it
        state = self.engine.submit(order)
        if bad is not None:
            log.warning("simulator: %s", bad)
        self.orders_received += 1
        rec = self._record(cid)
        exec_type = ExecType.REJECTED if state.status is OrderStatus.REJECTED else ExecType.NEW

        def ack() -> None:
            self._send_report(
                rec,
                exec_id=f"{rec['broker_order_id']}-{exec_type}",
                exec_type=exec_type,
                status=state.status,
                cum=0.0,
                avg=0.0,
                leaves=0.0 if state.status is OrderStatus.REJECTED else state.quantity,
                text=bad or state.reason,
            )

        if self.orders_received in self.drop_on_orders:
            # The order is booked; the connection dies before the ack leaves. The ack is
            # stored and reaches the client through the resend after it logs on again.
            def drop_then_ack() -> None:
                self.drop()
                with self._lock:
                    ack()

            t = threading.Thread(target=drop_then_ack, name="fixsim-drop", daemon=True)
            self._threads.append(t)
            t.start()
            return
        ack()

    def _on_cancel(self, msg: Any) -> None:
        orig = str(get(msg, Tag.ORIG_CL_ORD_ID))
        cancel_id = str(get(msg, Tag.CL_ORD_ID))
        current = self.engine.order_status(orig)
        if current is None or current.status.terminal:
            reply = new_message(self.qf, MsgType.ORDER_CANCEL_REJECT)
            set_fields(
                reply,
                {
                    Tag.ORDER_ID: (current.broker_order_id if current else None) or "NONE",
                    Tag.CL_ORD_ID: cancel_id,
                    Tag.ORIG_CL_ORD_ID: orig,
                    Tag.ORD_STATUS: ORD_STATUS_CODE[
                        current.status if current else OrderStatus.REJECTED
                    ],
                    Tag.CXL_REJ_RESPONSE_TO: "1",
                    Tag.CXL_REJ_REASON: "1" if current is None else "0",
                    Tag.TEXT: "unknown order" if current is None else "too late to cancel",
                },
            )
            self._send(reply)
            return
        state = self.engine.cancel(orig)
        rec = self._record(orig)
        cum = state.filled_quantity
        self._send_report(
            rec,
            exec_id=f"{rec['broker_order_id']}-X",
            exec_type=ExecType.CANCELED,
            status=state.status,
            cum=cum,
            avg=state.avg_price or 0.0,
            leaves=0.0,
            text=state.reason,
            cl_ord_id=cancel_id,
        )

    def _on_status(self, msg: Any) -> None:
        cid = str(get(msg, Tag.CL_ORD_ID))
        state = self.engine.order_status(cid)
        if state is not None:
            self._send_status(cid, state)
            return
        reply = new_message(self.qf, MsgType.EXECUTION_REPORT)
        set_fields(
            reply,
            {
                Tag.ORDER_ID: "NONE",
                Tag.CL_ORD_ID: cid,
                Tag.EXEC_ID: f"S-{cid}-unknown",
                Tag.EXEC_TYPE: ExecType.ORDER_STATUS,
                Tag.ORD_STATUS: ORD_STATUS_CODE[OrderStatus.REJECTED],
                Tag.ORD_REJ_REASON: ORD_REJ_UNKNOWN_ORDER,
                Tag.SYMBOL: str(get(msg, Tag.SYMBOL, "N/A")),
                Tag.SIDE: str(get(msg, Tag.SIDE, "1")),
                Tag.LEAVES_QTY: "0",
                Tag.CUM_QTY: "0",
                Tag.AVG_PX: "0",
                Tag.TEXT: "unknown order",
            },
        )
        self._send(reply)

    def _send_status(self, cid: str, state: OrderState) -> None:
        rec = self._record(cid)
        self._send_report(
            rec,
            exec_id=f"S-{rec['broker_order_id']}-{state.status.value}-{state.filled_quantity:g}",
            exec_type=ExecType.ORDER_STATUS,
            status=state.status,
            cum=state.filled_quantity,
            avg=state.avg_price or 0.0,
            leaves=state.leaves_quantity,
            text=state.reason,
        )

    def _on_positions(self, msg: Any) -> None:
        qf = self.qf
        req_id = str(get(msg, Tag.POS_REQ_ID))
        account = str(get(msg, Tag.ACCOUNT, ""))
        business = get(msg, Tag.CLEARING_BUSINESS_DATE) or fix_date(dt.date.today())
        held = self.engine.positions(account)
        ack = new_message(qf, MsgType.REQUEST_FOR_POSITIONS_ACK)
        set_fields(
            ack,
            {
                Tag.POS_MAINT_RPT_ID: f"{req_id}-ack",
                Tag.POS_REQ_ID: req_id,
                Tag.TOTAL_NUM_POS_REPORTS: str(len(held)),
                Tag.POS_REQ_RESULT: "0" if held else "2",
                Tag.POS_REQ_STATUS: "0",
                Tag.ACCOUNT: account,
                Tag.ACCOUNT_TYPE: "1",
            },
        )
        ack.addGroup(party_group(qf, self.sender_comp_id))
        self._send(ack)
        for i, (sid, qty) in enumerate(sorted(held.items()), start=1):
            rpt = new_message(qf, MsgType.POSITION_REPORT)
            set_fields(
                rpt,
                {
                    Tag.POS_MAINT_RPT_ID: f"{req_id}-{i}",
                    Tag.POS_REQ_ID: req_id,
                    Tag.TOTAL_NUM_POS_REPORTS: str(len(held)),
                    Tag.POS_REQ_RESULT: "0",
                    Tag.CLEARING_BUSINESS_DATE: business,
                    Tag.ACCOUNT: account,
                    Tag.ACCOUNT_TYPE: "1",
                    Tag.SYMBOL: sid,
                    Tag.SETTL_PRICE: "0",
                    Tag.SETTL_PRICE_TYPE: "1",
                    Tag.PRIOR_SETTL_PRICE: "0",
                },
            )
            rpt.addGroup(party_group(qf, self.sender_comp_id))
            pos = qf.Group(Tag.NO_POSITIONS, Tag.POS_TYPE)
            pos.setField(Tag.POS_TYPE, "FIN")
            pos.setField(Tag.LONG_QTY, f"{max(qty, 0.0):g}")
            pos.setField(Tag.SHORT_QTY, f"{max(-qty, 0.0):g}")
            rpt.addGroup(pos)
            amt = qf.Group(Tag.NO_POS_AMT, Tag.POS_AMT_TYPE)
            amt.setField(Tag.POS_AMT_TYPE, "FMTM")
            amt.setField(Tag.POS_AMT, "0")
            rpt.addGroup(amt)
            self._send(rpt)

    def _on_collateral_inquiry(self, msg: Any) -> None:
        inquiry = str(get(msg, Tag.COLL_INQUIRY_ID))
        account = str(get(msg, Tag.ACCOUNT, ""))
        if self.accounts is not None and account not in self.accounts:
            ack = new_message(self.qf, MsgType.COLLATERAL_INQUIRY_ACK)
            set_fields(
                ack,
                {
                    Tag.COLL_INQUIRY_ID: inquiry,
                    Tag.COLL_INQUIRY_STATUS: COLL_INQUIRY_REJECTED,
                    Tag.COLL_INQUIRY_RESULT: "99",  # other: see Text
                    Tag.ACCOUNT: account,
                    Tag.TEXT: "unknown account",
                },
            )
            self._send(ack)
            return
        report = new_message(self.qf, MsgType.COLLATERAL_REPORT)
        set_fields(
            report,
            {
                Tag.COLL_RPT_ID: f"{inquiry}-1",
                Tag.COLL_INQUIRY_ID: inquiry,
                # Required by the dictionary; 3 = assigned: the balance is on deposit here.
                Tag.COLL_STATUS: "3",
                Tag.TOT_NUM_REPORTS: "1",
                Tag.ACCOUNT: account,
                Tag.CURRENCY: "USD",  # the engine keeps one balance per account
                Tag.CASH_OUTSTANDING: f"{self.engine.cash(account):.6f}",
            },
        )
        self._send(report)

    # ---- outbound --------------------------------------------------------------------

    def _record(self, cid: str) -> dict[str, Any]:
        orders, _ = self.engine.snapshot()
        for rec in orders:
            if rec["client_order_id"] == cid:
                return rec
        raise KeyError(cid)

    def _send_report(
        self,
        rec: dict[str, Any],
        *,
        exec_id: str,
        exec_type: str,
        status: OrderStatus,
        cum: float,
        avg: float,
        leaves: float,
        text: str | None = None,
        last: tuple[float, float, float] | None = None,
        transact: dt.datetime | None = None,
        cl_ord_id: str | None = None,
    ) -> None:
        msg = new_message(self.qf, MsgType.EXECUTION_REPORT)
        fields = {
            Tag.ORDER_ID: str(rec["broker_order_id"]),
            Tag.CL_ORD_ID: cl_ord_id or str(rec["client_order_id"]),
            Tag.EXEC_ID: exec_id,
            Tag.EXEC_TYPE: exec_type,
            Tag.ORD_STATUS: ORD_STATUS_CODE[status],
            Tag.ACCOUNT: str(rec["account"]),
            Tag.SYMBOL: str(rec["security_id"]),
            Tag.SIDE: SIDE_CODE[str(rec["side"])],
            Tag.ORDER_QTY: f"{float(rec['quantity']):g}",
            Tag.LEAVES_QTY: f"{leaves:g}",
            Tag.CUM_QTY: f"{cum:g}",
            Tag.AVG_PX: f"{avg:.6f}",
            Tag.TRADE_DATE: fix_date(dt.date.fromisoformat(str(rec["trade_date"]))),
            Tag.TRANSACT_TIME: utc_timestamp(transact),
        }
        if cl_ord_id is not None:
            fields[Tag.ORIG_CL_ORD_ID] = str(rec["client_order_id"])
        if last is not None:
            fields[Tag.LAST_QTY] = f"{last[0]:g}"
            fields[Tag.LAST_PX] = f"{last[1]:.6f}"
            fields[Tag.COMMISSION] = f"{last[2]:.6f}"
            fields[Tag.COMM_TYPE] = "3"  # absolute
        if status is OrderStatus.REJECTED and exec_type == ExecType.REJECTED:
            fields[Tag.ORD_REJ_REASON] = "99"
        if text:
            fields[Tag.TEXT] = text
        set_fields(msg, fields)
        self._send(msg)
        if exec_type != ExecType.ORDER_STATUS:
            self._published.add(exec_id)
            tmp = self._ledger_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(sorted(self._published)))
            os.replace(tmp, self._ledger_path)

    def _send(self, msg: Any) -> None:
        # Returns False while the client is offline; QuickFIX has stored the message and
        # resends it when the client asks (ResendRequest after its next Logon).
        self.qf.Session.sendToTarget(msg, self.session_id)


def _make_app(qf: Any, sim: FixAcceptor) -> Any:
    class _SimulatorApp(qf.Application):  # type: ignore[misc,name-defined]
        def onCreate(self, sessionID: Any) -> None:  # noqa: N802 (QuickFIX callback)
            pass

        def onLogon(self, sessionID: Any) -> None:  # noqa: N802 (QuickFIX callback)
            log.info("simulator: %s logged on", sessionID)

        def onLogout(self, sessionID: Any) -> None:  # noqa: N802 (QuickFIX callback)
            log.info("simulator: %s logged out", sessionID)

        def toAdmin(self, message: Any, sessionID: Any) -> None:  # noqa: N802 (QuickFIX callback)
            pass

        def fromAdmin(self, message: Any, sessionID: Any) -> None:  # noqa: N802 (QuickFIX callback)
            pass

        def toApp(self, message: Any, sessionID: Any) -> None:  # noqa: N802 (QuickFIX callback)
            pass

        def fromApp(self, message: Any, sessionID: Any) -> None:  # noqa: N802 (QuickFIX callback)
            try:
                sim.on_message(message)
            except Exception:  # a bug here must not kill QuickFIX's thread silently
                log.exception("simulator: failed to handle %s", message.toString())

    return _SimulatorApp()


def _main(argv: Iterable[str] | None = None) -> None:  # pragma: no cover - manual tool
    from pipelines.execution.prices import LakePriceSource
    from pipelines.lake import Lake

    parser = argparse.ArgumentParser(description="FIX 4.4 broker simulator on loopback")
    parser.add_argument("--port", type=int, default=9878)
    parser.add_argument("--data-dir", default="var/fixsim")
    parser.add_argument("--work-every", type=float, default=5.0, help="seconds between sessions")
    parser.add_argument(
        "--initial-cash", type=float, default=10_000_000.0, help="cash of a new account"
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    sim = FixAcceptor(
        args.data_dir,
        LakePriceSource(Lake.from_settings()),
        port=args.port,
        initial_cash=args.initial_cash,
    )
    sim.start()
    print(f"FIX simulator listening on 127.0.0.1:{sim.port} ({sim.sender_comp_id})")
    stop = threading.Event()
    try:
        while not stop.wait(args.work_every):
            sim.work()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


__all__ = ["FixAcceptor"]

if __name__ == "__main__":  # pragma: no cover
    _main()
