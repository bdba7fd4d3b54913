"""The kill switch at the broker: engaged (in the lake) from any folder it blocks every
order; engaging it cancels every open order at the venue (paper and FIX); an unreadable
state sends nothing. Tests taking ``venue`` run against the paper broker and against the
FIX broker talking to the QuickFIX acceptor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.execution import OrderStatus, execute_day, load_orders, reconcile_day
from pipelines.execution.execute import engage_kill_switch
from pipelines.execution.records import read_day
from pipelines.lake import Lake
from pipelines.risk import kill_switch

from .conftest import NAV, PF, TRADE, CountingBroker

pytestmark = pytest.mark.unit


def run(lake, targets, broker, limits, adv, **kw):
    return execute_day(lake, PF, TRADE, targets, broker, limits, nav=NAV, adv=adv, **kw)


def test_engaged_from_another_folder_blocks_every_order(
    lake, targets, venue, limits, adv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    for d in ("ops", "worker"):
        (tmp_path / d).mkdir()
    monkeypatch.chdir(tmp_path / "ops")
    kill_switch.engage(Lake(str(tmp_path / "lake")), reason="halt trading", actor="ops")
    monkeypatch.chdir(tmp_path / "worker")  # the worker runs elsewhere, same lake
    counting = CountingBroker(venue.broker)
    report = run(lake, targets, counting, limits, adv)
    assert counting.sent == [] and venue.at_venue() == {}
    assert len(report.rejected_pretrade) == len(report.orders) == 6
    orders = load_orders(lake, PF, TRADE)
    assert orders["reject_rules"].map(lambda r: "kill_switch" in json.loads(r)).all()
    assert orders["reject_reason"].str.contains("halt trading").all()


def test_engaging_cancels_working_orders_at_the_venue(lake, targets, venue, limits, adv, prices):
    report = run(lake, targets, venue.broker, limits, adv)
    assert len(report.submitted) == 6
    state, cancelled = engage_kill_switch(
        lake, venue.broker, PF, reason="runaway algo", actor="ops"
    )
    assert state.engaged
    assert sorted(s.client_order_id for s in cancelled) == sorted(report.submitted)
    assert {s.status for s in cancelled} == {OrderStatus.CANCELLED}
    venue.session(TRADE)  # the session runs: nothing is left to fill
    assert {o["status"] for o in venue.at_venue().values()} == {"cancelled"}
    assert venue.broker.fills(PF, TRADE) == []
    assert venue.broker.open_orders(PF) == []
    rec = reconcile_day(lake, venue.broker, PF, TRADE, prices=prices)
    events = read_day(lake, "order_events", TRADE, PF)
    assert events["event_type"].eq("cancel").sum() == 6 and rec.clean


def test_engaged_mid_session_cancels_working_orders_and_blocks_the_rest(
    lake, targets, venue, limits, adv
):
    """Two orders reach the venue, then the switch is engaged: those two are cancelled at
    the venue (over FIX: OrderCancelRequest to the acceptor), the other four never leave."""

    class EngageAfterTwo(CountingBroker):
        def submit(self, order):
            state = super().submit(order)
            if len(self.sent) == 2:
                kill_switch.engage(lake, reason="desk halt", actor="risk")
            return state

    broker = EngageAfterTwo(venue.broker)
    report = run(lake, targets, broker, limits, adv, kill_switch_poll=0)
    assert len(broker.sent) == 2 and len(report.blocked) == 4
    assert sorted(report.cancelled) == sorted(broker.sent)
    at_venue = venue.at_venue()
    assert sorted(at_venue) == sorted(broker.sent)
    assert {o["status"] for o in at_venue.values()} == {"cancelled"}
    if venue.acceptor is not None:
        assert venue.acceptor.new_order_messages == 2
    venue.session(TRADE)
    assert venue.broker.fills(PF, TRADE) == []
    events = read_day(lake, "order_events", TRADE, PF)
    assert set(events.loc[events["event_type"] == "cancel", "client_order_id"]) == set(broker.sent)
    assert events.loc[events["event_type"] == "blocked", "reason"].str.contains("desk halt").all()
    # A re-run while engaged sends nothing.
    again = CountingBroker(venue.broker)
    run(lake, targets, again, limits, adv)
    assert again.sent == []


def test_unreadable_state_sends_nothing(lake, targets, venue, limits, adv):
    class KillSwitchUnreadable:
        """The lake, except that the kill switch's table cannot be read."""

        def __init__(self, inner: Lake) -> None:
            self.inner = inner

        def as_of(self, name, **kw):
            if name == "kill_switch":
                raise OSError("connection reset reading kill_switch")
            return self.inner.as_of(name, **kw)

        def __getattr__(self, item):
            return getattr(self.inner, item)

    counting = CountingBroker(venue.broker)
    report = run(KillSwitchUnreadable(lake), targets, counting, limits, adv)
    assert counting.sent == [] and venue.at_venue() == {}
    assert len(report.rejected_pretrade) == 6
    orders = load_orders(lake, PF, TRADE)
    assert orders["reject_reason"].str.contains("unreadable").all()


def test_unreadable_mid_batch_blocks_the_rest(lake, targets, venue, limits, adv):
    class BreaksAfterTwo(CountingBroker):
        broken = False

        def submit(self, order):
            state = super().submit(order)
            if len(self.sent) == 2:
                BreaksAfterTwo.broken = True
            return state

    class Store:
        def __init__(self, inner: Lake) -> None:
            self.inner = inner

        def as_of(self, name, **kw):
            if name == "kill_switch" and BreaksAfterTwo.broken:
                raise OSError("lake unreachable")
            return self.inner.as_of(name, **kw)

        def __getattr__(self, item):
            return getattr(self.inner, item)

    broker = BreaksAfterTwo(venue.broker)
    report = run(Store(lake), targets, broker, limits, adv, kill_switch_poll=0)
    assert len(broker.sent) == 2 and len(report.blocked) == 4
    assert report.cancelled == []  # nothing is cancelled on a guess


def test_a_batch_reads_the_switch_at_most_once_per_poll_interval(lake, targets, venue, limits, adv):
    """Hundreds of orders must not pay one lake read each: within ``kill_switch_poll``
    seconds of the last read the switch is not read again (the first read, before the
    batch, always happens)."""

    class CountingReads:
        def __init__(self, inner: Lake) -> None:
            self.inner, self.reads = inner, 0

        def as_of(self, name, **kw):
            self.reads += name == "kill_switch"
            return self.inner.as_of(name, **kw)

        def __getattr__(self, item):
            return getattr(self.inner, item)

    store = CountingReads(lake)
    counting = CountingBroker(venue.broker)
    run(store, targets, counting, limits, adv, kill_switch_poll=3600)
    assert len(counting.sent) == 6
    # Pre-trade reads it once for the batch, the send loop once before the first send.
    assert store.reads == 2
