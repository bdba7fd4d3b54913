"""execute_day: orders persisted before sending, exactly-once submission under faults.

Tests taking ``venue`` run against the paper broker and the FIX broker alike.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pipelines.execution import PaperBroker, execute_day, load_orders, reconcile_day
from pipelines.execution import execute as execute_mod
from pipelines.execution.records import read_day
from pipelines.risk import kill_switch
from pipelines.risk.pretrade import with_kill_switch

from .conftest import NAV, PF, TRADE, CountingBroker, KilledAfter

pytestmark = pytest.mark.unit


def run(lake, targets, broker, limits, adv, **kw):
    return execute_day(lake, PF, TRADE, targets, broker, limits, nav=NAV, adv=adv, **kw)


def broker_orders(paper: PaperBroker) -> dict[str, dict]:
    """The orders the paper broker holds (read from its state file)."""
    path = Path(paper.state_path)
    return json.loads(path.read_text())["orders"] if path.exists() else {}


def test_happy_path_orders_persisted_acked_and_filled(lake, targets, venue, limits, adv, prices):
    report = run(lake, targets, venue.broker, limits, adv)
    assert report.generated and len(report.orders) == 6
    assert sorted(report.submitted) == sorted(report.orders["client_order_id"])
    orders = load_orders(lake, PF, TRADE)
    assert set(orders["status"]) == {"accepted"}
    # Netting against (empty) positions: signed quantity = target.
    signed = orders["quantity"].where(orders["side"] == "buy", -orders["quantity"])
    assert dict(zip(orders["security_id"], signed, strict=True)) == dict(
        zip(targets["security_id"], targets["target_shares"], strict=True)
    )
    events = read_day(lake, "order_events", TRADE, PF)
    assert sorted(events.loc[events["event_type"] == "ack", "client_order_id"]) == sorted(
        orders["client_order_id"]
    )
    venue.session(TRADE)
    rec = reconcile_day(lake, venue.broker, PF, TRADE, prices=prices)
    assert rec.clean, rec.breaks
    fills = read_day(lake, "fills", TRADE, PF)
    assert fills.groupby("client_order_id")["quantity"].sum().sum() == orders["quantity"].sum()
    events = read_day(lake, "order_events", TRADE, PF)
    assert events["event_type"].eq("fill").sum() == 6
    audit = read_day(lake, "execution_audit", TRADE, PF)
    assert {"targets", "pretrade", "orders", "send", "fills", "reconcile"} <= set(audit["stage"])


def test_same_day_twice_sends_nothing_new(lake, targets, venue, limits, adv):
    first = run(lake, targets, venue.broker, limits, adv)
    # Positions changed at the broker after the session; a re-run must not re-derive orders.
    venue.session(TRADE)
    counting = CountingBroker(venue.broker)
    second = run(lake, targets, counting, limits, adv)
    assert not second.generated
    assert counting.sent == []
    assert sorted(second.already_at_broker) == sorted(first.submitted)
    assert len(load_orders(lake, PF, TRADE)) == 6
    assert len(venue.at_venue()) == 6


def test_connection_drop_mid_batch_no_duplicates_no_losses(lake, targets, venue, limits, adv):
    broker = venue.dropping({2, 4})
    report = run(lake, targets, broker, limits, adv)
    assert report.reconnects == 2
    at_venue = venue.at_venue()
    assert sorted(at_venue) == sorted(report.orders["client_order_id"])  # none lost
    if venue.acceptor is None:
        assert broker.submits == 6  # none sent twice
    else:
        assert venue.acceptor.new_order_messages == 6  # on the wire: none sent twice
    assert sorted(report.submitted + report.already_at_broker) == sorted(at_venue)
    assert len(report.already_at_broker) == 2  # the two whose ack was lost were found
    events = read_day(lake, "order_events", TRADE, PF)
    assert events["event_type"].eq("ack").sum() == 6


def test_killed_after_half_then_retry_sends_only_missing(lake, targets, venue, limits, adv):
    killed = KilledAfter(venue.broker, n=3)
    with pytest.raises(SystemExit):
        run(lake, targets, killed, limits, adv)
    assert len(venue.at_venue()) == 3
    counting = CountingBroker(venue.broker)
    report = run(lake, targets, counting, limits, adv)
    assert not report.generated
    assert len(counting.sent) == 3
    assert set(counting.sent).isdisjoint(report.already_at_broker)
    assert len(venue.at_venue()) == 6


def test_hard_kill_before_acks_recorded_recovers_from_broker(
    lake, targets, paper, limits, adv, monkeypatch
):
    real = execute_mod.append_records

    def no_events(lake_, table, *a, **k):
        if table == "order_events":
            raise SystemExit("SIGKILL before anything was recorded")
        return real(lake_, table, *a, **k)

    monkeypatch.setattr(execute_mod, "append_records", no_events)
    with pytest.raises(SystemExit):
        run(lake, targets, KilledAfter(paper, n=4), limits, adv)
    monkeypatch.setattr(execute_mod, "append_records", real)
    assert read_day(lake, "order_events", TRADE, PF).empty
    counting = CountingBroker(paper)
    report = run(lake, targets, counting, limits, adv)
    assert len(counting.sent) == 2  # the 4 at the broker were found by status, not re-sent
    assert len(report.already_at_broker) == 4
    assert len(broker_orders(paper)) == 6


def test_broker_rejects_an_order(lake, targets, venue_factory, limits, adv):
    venue = venue_factory(
        reject_if=lambda o: "security not borrowable" if o.security_id == "S2" else None
    )
    report = run(lake, targets, venue.broker, limits, adv)
    assert len(report.rejected_broker) == 1
    assert len(report.submitted) == 5
    events = read_day(lake, "order_events", TRADE, PF)
    rej = events[events["event_type"] == "reject"]
    assert rej["security_id"].tolist() == ["S2"]
    assert rej["reason"].iloc[0] == "security not borrowable"
    # A re-run does not retry a rejected order (the broker already answered for that id).
    counting = CountingBroker(venue.broker)
    run(lake, targets, counting, limits, adv)
    assert counting.sent == []


def test_pretrade_rejects_are_recorded_and_never_sent(lake, targets, paper, limits, adv):
    limits = limits.model_copy(update={"restricted": ["S3"]})
    counting = CountingBroker(paper)
    report = run(lake, targets, counting, limits, adv)
    orders = load_orders(lake, PF, TRADE)
    bad = orders[orders["status"] == "rejected"]
    assert bad["security_id"].tolist() == ["S3"]
    assert json.loads(bad["reject_rules"].iloc[0]) == ["restricted_list"]
    assert "restricted" in bad["reject_reason"].iloc[0]
    assert bad["client_order_id"].iloc[0] not in counting.sent
    assert report.rejected_pretrade == bad["client_order_id"].tolist()
    audit = read_day(lake, "execution_audit", TRADE, PF)
    failed = audit[(audit["stage"] == "pretrade") & (audit["event"] == "check_failed")]
    assert failed["security_id"].tolist() == ["S3"]


def test_kill_switch_on_nothing_leaves(lake, targets, venue, limits, adv):
    counting = CountingBroker(venue.broker)
    report = run(lake, targets, counting, with_kill_switch(limits), adv)
    assert counting.sent == []
    assert len(report.rejected_pretrade) == 6
    orders = load_orders(lake, PF, TRADE)
    assert orders["reject_rules"].map(lambda r: "kill_switch" in json.loads(r)).all()
    assert venue.at_venue() == {}
    if venue.acceptor is not None:
        assert venue.acceptor.new_order_messages == 0


def test_kill_switch_mid_batch_blocks_the_rest(lake, targets, paper, limits, adv):
    class EngageAfterTwo(CountingBroker):
        def submit(self, order):
            state = super().submit(order)
            if len(self.sent) == 2:
                kill_switch.engage(lake, reason="stop", actor="ops")
            return state

    broker = EngageAfterTwo(paper)
    # Re-read the switch before every send (the default polls once a second).
    report = run(lake, targets, broker, limits, adv, kill_switch_poll=0)
    assert len(broker.sent) == 2 and len(report.blocked) == 4
    kill_switch.release(lake, reason="resume", actor="ops")
    again = CountingBroker(paper)
    report2 = run(lake, targets, again, limits, adv)
    assert sorted(again.sent) == sorted(report.blocked)
    assert len(report2.already_at_broker) == 2


def test_orders_netted_against_broker_positions(lake, targets, paper, limits, adv):
    paper.seed(PF, {"S1": 400.0, "S9": 300.0})
    run(lake, targets, paper, limits, adv, lot_size=100)
    orders = load_orders(lake, PF, TRADE).set_index("security_id")
    assert orders.loc["S1", "quantity"] == 600 and orders.loc["S1", "side"] == "buy"
    assert orders.loc["S1", "current_shares"] == 400
    # Held but not targeted: liquidated in full.
    assert orders.loc["S9", "side"] == "sell" and orders.loc["S9", "quantity"] == 300
    assert isinstance(orders, pd.DataFrame)
