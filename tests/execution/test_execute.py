"""execute_day: orders persisted before sending, exactly-once submission under faults."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pipelines.execution import PaperBroker, execute_day, load_orders, reconcile_day
from pipelines.execution import execute as execute_mod
from pipelines.execution.records import read_day
from pipelines.risk.pretrade import with_kill_switch

from .conftest import NAV, PF, TRADE, CountingBroker, FlakyBroker, KilledAfter


def run(lake, targets, broker, limits, adv, **kw):
    return execute_day(lake, PF, TRADE, targets, broker, limits, nav=NAV, adv=adv, **kw)


def broker_orders(paper: PaperBroker) -> dict[str, dict]:
    path = Path(paper.state_path)
    return json.loads(path.read_text())["orders"] if path.exists() else {}


def test_happy_path_orders_persisted_acked_and_filled(lake, targets, paper, limits, adv, prices):
    report = run(lake, targets, paper, limits, adv)
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
    rec = reconcile_day(lake, paper, PF, TRADE, prices=prices)
    assert rec.clean, rec.breaks
    fills = read_day(lake, "fills", TRADE, PF)
    assert fills.groupby("client_order_id")["quantity"].sum().sum() == orders["quantity"].sum()
    audit = read_day(lake, "execution_audit", TRADE, PF)
    assert {"targets", "pretrade", "orders", "send", "fills", "reconcile"} <= set(audit["stage"])


def test_same_day_twice_sends_nothing_new(lake, targets, paper, limits, adv):
    first = run(lake, targets, paper, limits, adv)
    counting = CountingBroker(paper)
    # Positions changed at the broker after the session; a re-run must not re-derive orders.
    paper.work()
    second = run(lake, targets, counting, limits, adv)
    assert not second.generated
    assert counting.sent == []
    assert sorted(second.already_at_broker) == sorted(first.submitted)
    assert len(load_orders(lake, PF, TRADE)) == 6
    assert len(broker_orders(paper)) == 6


def test_connection_drop_mid_batch_no_duplicates_no_losses(lake, targets, paper, limits, adv):
    flaky = FlakyBroker(paper, drop_after={2, 4})
    report = run(lake, targets, flaky, limits, adv)
    assert report.reconnects == 2
    at_broker = broker_orders(paper)
    assert sorted(at_broker) == sorted(report.orders["client_order_id"])  # none lost
    assert flaky.submits == 6  # none sent twice
    assert sorted(report.submitted + report.already_at_broker) == sorted(at_broker)
    events = read_day(lake, "order_events", TRADE, PF)
    assert events["event_type"].eq("ack").sum() == 6


def test_killed_after_half_then_retry_sends_only_missing(lake, targets, paper, limits, adv):
    killed = KilledAfter(paper, n=3)
    with pytest.raises(SystemExit):
        run(lake, targets, killed, limits, adv)
    assert len(broker_orders(paper)) == 3
    counting = CountingBroker(paper)
    report = run(lake, targets, counting, limits, adv)
    assert not report.generated
    assert len(counting.sent) == 3
    assert set(counting.sent).isdisjoint(report.already_at_broker)
    assert len(broker_orders(paper)) == 6


def test_hard_kill_before_acks_recorded_recovers_from_broker(
    lake, targets, paper, limits, adv, monkeypatch
):
    real = execute_mod.append_new

    def no_events(lake_, table, *a, **k):
        if table == "order_events":
            raise SystemExit("SIGKILL before anything was recorded")
        return real(lake_, table, *a, **k)

    monkeypatch.setattr(execute_mod, "append_new", no_events)
    with pytest.raises(SystemExit):
        run(lake, targets, KilledAfter(paper, n=4), limits, adv)
    monkeypatch.setattr(execute_mod, "append_new", real)
    assert read_day(lake, "order_events", TRADE, PF).empty
    counting = CountingBroker(paper)
    report = run(lake, targets, counting, limits, adv)
    assert len(counting.sent) == 2  # the 4 at the broker were found by status, not re-sent
    assert len(report.already_at_broker) == 4
    assert len(broker_orders(paper)) == 6


def test_broker_rejects_an_order(lake, targets, tmp_path, prices, limits, adv):
    paper = PaperBroker(
        tmp_path / "b.json",
        prices,
        reject_if=lambda o: "security not borrowable" if o.security_id == "S2" else None,
    )
    report = run(lake, targets, paper, limits, adv)
    assert len(report.rejected_broker) == 1
    events = read_day(lake, "order_events", TRADE, PF)
    rej = events[events["event_type"] == "reject"]
    assert rej["security_id"].tolist() == ["S2"]
    assert rej["reason"].iloc[0] == "security not borrowable"
    # A re-run does not retry a rejected order (the broker already answered for that id).
    counting = CountingBroker(paper)
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


def test_kill_switch_on_nothing_leaves(lake, targets, paper, limits, adv):
    counting = CountingBroker(paper)
    report = run(lake, targets, counting, with_kill_switch(limits), adv)
    assert counting.sent == []
    assert len(report.rejected_pretrade) == 6
    orders = load_orders(lake, PF, TRADE)
    assert orders["reject_rules"].map(lambda r: "kill_switch" in json.loads(r)).all()
    assert broker_orders(paper) == {}


def test_kill_switch_file_mid_batch_blocks_the_rest(lake, targets, paper, limits, adv, tmp_path):
    kill = tmp_path / "KILL"

    class EngageAfterTwo(CountingBroker):
        def submit(self, order):
            state = super().submit(order)
            if len(self.sent) == 2:
                kill.write_text("stop")
            return state

    broker = EngageAfterTwo(paper)
    report = run(lake, targets, broker, limits, adv, kill_switch_file=kill)
    assert len(broker.sent) == 2 and len(report.blocked) == 4
    kill.unlink()
    again = CountingBroker(paper)
    report2 = run(lake, targets, again, limits, adv, kill_switch_file=kill)
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
