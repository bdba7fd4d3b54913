"""FIX-session specifics: heartbeats, sequence numbers across restarts, resend after a
reconnect, algorithm tags on the wire, the collateral inquiry behind ``cash``. (The order
lifecycle itself is shared with the paper broker: test_lifecycle.py / test_execute.py run
both.)"""

from __future__ import annotations

import time

import pytest

from pipelines.execution import (
    Algo,
    AlgoInstruction,
    BrokerConnectionError,
    BrokerError,
    BrokerOrder,
    OrderStatus,
)
from pipelines.execution.fix_session import (
    MsgType,
    Tag,
    algo_fields,
    algo_from_fields,
    new_message,
    set_fields,
)

from .conftest import PF, TRADE, wait_for

pytestmark = pytest.mark.unit


def order(sid: str, qty: float, **kw: object) -> BrokerOrder:
    return BrokerOrder(f"F{sid}{int(qty)}", PF, TRADE, sid, "buy", qty, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "algo",
    [
        AlgoInstruction(Algo.VWAP, start="09:30:00", end="16:00:00"),
        AlgoInstruction(Algo.TWAP, start="10:00:00", end="15:30:00", urgency="low"),
        AlgoInstruction(Algo.POV, participation=0.12, urgency="high"),
    ],
)
def test_algo_tags_round_trip(algo: AlgoInstruction) -> None:
    fields = algo_fields(algo)
    assert fields[Tag.TARGET_STRATEGY] == {"vwap": "1", "pov": "2", "twap": "1001"}[algo.algo]
    assert algo_from_fields(fields) == algo
    assert algo_fields(AlgoInstruction(Algo.NONE)) == {}


def wire(venue) -> str:
    """Every FIX message the simulator sent or received (its QuickFIX message log)."""
    logs = sorted((venue.acceptor.data_dir / "log").glob("*messages*"))
    return "".join(p.read_text() for p in logs)


@pytest.mark.integration
class TestFixSession:
    def test_heartbeats_and_sequence_numbers_survive_restart(self, fix_venue_factory, tmp_path):
        venue = fix_venue_factory()
        # A 1-second heartbeat interval on a fresh client shows both sides keep it alive.
        venue.broker.close()
        from pipelines.execution.fix_broker import FixBroker

        broker = FixBroker(
            venue.make().data_dir, port=venue.acceptor.port, heartbeat=1, timeout=5.0
        )
        venue.make, venue.broker = (lambda: broker), broker
        broker.connect()
        wait_for(lambda: broker.heartbeats_received >= 2, timeout=5.0)
        broker.submit(order("S1", 100))
        sent_before = broker.next_sender_seq
        assert sent_before > 3  # logons, heartbeats and the order all advanced it
        broker.close()
        again = FixBroker(broker.data_dir, port=venue.acceptor.port, timeout=5.0)
        venue.make = lambda: again
        venue.broker = again
        again.connect()
        # The FileStore continued the session: no reset to 1 after the restart.
        assert again.next_sender_seq > sent_before
        assert again.order_status("FS1100").status is OrderStatus.NEW

    def test_reports_sent_while_offline_arrive_by_resend(self, fix_venue_factory):
        venue = fix_venue_factory()
        broker = venue.broker
        for sid in ("S1", "S3", "S5"):
            broker.submit(order(sid, 600))
        requests_before = broker.resend_requests_sent
        broker.close()  # we are away while the broker works the session
        assert venue.acceptor.work(TRADE) == 9  # three executions per order, all stored
        broker.connect()
        broker.sync()
        assert broker.resend_requests_sent > requests_before
        fills = broker.fills(PF, TRADE)
        assert len(fills) == 9 and sum(f.quantity for f in fills) == 1_800
        assert all(
            broker.order_status(f"F{sid}600").status is OrderStatus.FILLED
            for sid in ("S1", "S3", "S5")
        )
        # Resent reports are applied once: the journal de-duplicates by ExecID.
        assert broker.positions(PF) == {"S1": 600, "S3": 600, "S5": 600}

    def test_connection_cut_reconnects_by_itself(self, fix_venue_factory):
        venue = fix_venue_factory()
        broker = venue.broker
        logons = broker.logons
        venue.acceptor.drop()
        wait_for(lambda: broker.logons > logons and broker.logged_on, timeout=10.0)
        assert broker.submit(order("S2", 100)).status is OrderStatus.NEW

    def test_orders_are_never_replayed_by_the_session(self, fix_venue_factory):
        venue = fix_venue_factory()
        broker = venue.broker
        venue.acceptor.drop_on_orders = {1}
        with pytest.raises(BrokerConnectionError, match=r"session lost|not logged on"):
            broker.submit(order("S4", 100))
        wait_for(lambda: broker.logged_on, timeout=10.0)
        time.sleep(0.2)
        broker.sync()
        # Acked through the resend; the order itself went over the wire exactly once.
        assert broker.order_status("FS4100").status is OrderStatus.NEW
        assert venue.acceptor.new_order_messages == 1
        assert wire(venue).count("\x0135=D\x01") == 1

    def test_algo_instructions_on_the_wire(self, fix_venue_factory):
        venue = fix_venue_factory()
        algo = AlgoInstruction(Algo.TWAP, start="10:00:00", end="15:30:00", urgency="low")
        venue.broker.submit(order("S6", 300, algo=algo))
        pov = AlgoInstruction(Algo.POV, participation=0.05)
        venue.broker.submit(order("S3", 300, algo=pov))
        msgs = wire(venue)
        assert "\x01847=1001\x01848=StartTime=10:00:00;EndTime=15:30:00;Urgency=low\x01" in msgs
        assert "\x01847=2\x01849=0.05\x01" in msgs

    def test_a_resend_never_replays_an_order(self, fix_venue_factory):
        import quickfix

        venue = fix_venue_factory()
        broker = venue.broker
        broker.submit(order("S1", 100))
        # The connection dies; before we notice, a NewOrderSingle is handed to QuickFIX.
        # It is stored with a sequence number but cannot go out.
        venue.acceptor.drop()
        wait_for(lambda: not broker.logged_on, timeout=5.0)
        assert not venue.acceptor.logged_on
        stranded = broker.new_order_message(order("S2", 100))
        quickfix.Session.sendToTarget(stranded, broker.session_id)
        # After the reconnect the broker asks for the gap; the order is gap-filled, not
        # replayed (whether to send it is decided by asking the broker first).
        wait_for(lambda: broker.logged_on, timeout=10.0)
        broker.sync()
        assert venue.acceptor.new_order_messages == 1
        assert broker.order_status("FS2100") is None
        assert broker.orders_withheld == 1
        assert "\x01123=Y\x01" in wire(venue)  # SequenceReset GapFillFlag

    def test_cash_by_collateral_inquiry(self, fix_venue_factory):
        venue = fix_venue_factory(initial_cash=250_000.0, accounts={PF})
        assert venue.broker.cash(PF) == 250_000.0
        msgs = wire(venue)
        assert "\x0135=BB\x01" in msgs and "\x01263=0\x01" in msgs
        assert "\x0135=BA\x01" in msgs and "\x01901=250000.000000\x01" in msgs
        # An account the broker does not hold is an error, not "cash not reported".
        with pytest.raises(BrokerError, match="unknown account"):
            venue.broker.cash("pf-unknown")
        assert "\x0135=BG\x01" in wire(venue) and "\x01945=4\x01" in wire(venue)

    def test_cash_is_none_when_the_inquiry_is_not_supported(self, fix_venue_factory, monkeypatch):
        venue = fix_venue_factory()
        acceptor = venue.acceptor

        def not_supported(msg):
            ack = new_message(acceptor.qf, MsgType.COLLATERAL_INQUIRY_ACK)
            set_fields(
                ack,
                {
                    Tag.COLL_INQUIRY_ID: str(msg.getField(Tag.COLL_INQUIRY_ID)),
                    Tag.COLL_INQUIRY_STATUS: "4",
                    Tag.COLL_INQUIRY_RESULT: "8",
                },
            )
            acceptor._send(ack)

        monkeypatch.setattr(acceptor, "_on_collateral_inquiry", not_supported)
        assert venue.broker.cash(PF) is None
