"""The order lifecycle every broker must honour — run against the paper broker and FIX.

submit → ack (idempotent) → partial fill / fill / expiry, broker reject, cancel, unknown
ids, algorithm instructions reaching the venue, cash following the fills, state surviving
a restart.
"""

from __future__ import annotations

import pytest

from pipelines.execution import (
    Algo,
    AlgoInstruction,
    Broker,
    BrokerError,
    BrokerOrder,
    CostModel,
    OrderStatus,
)

from .conftest import MARKET, PF, TRADE, Venue

pytestmark = pytest.mark.unit


def order(sid: str = "S1", qty: float = 1_000, side: str = "buy", **kw: object) -> BrokerOrder:
    return BrokerOrder(
        client_order_id=f"T{sid}{side[0]}{int(qty)}",
        account=PF,
        trade_date=TRADE,
        security_id=sid,
        side=side,  # type: ignore[arg-type]
        quantity=qty,
        **kw,  # type: ignore[arg-type]
    )


def test_broker_protocol(venue: Venue) -> None:
    assert isinstance(venue.broker, Broker)


def test_submit_is_acknowledged_once(venue: Venue) -> None:
    o = order()
    ack = venue.broker.submit(o)
    assert ack.status is OrderStatus.NEW
    assert ack.quantity == 1_000 and ack.filled_quantity == 0 and ack.broker_order_id
    again = venue.broker.submit(o)
    assert again.broker_order_id == ack.broker_order_id
    assert venue.broker.order_status(o.client_order_id).status is OrderStatus.NEW
    assert list(venue.at_venue()) == [o.client_order_id]


def test_unknown_order_has_no_status(venue: Venue) -> None:
    assert venue.broker.order_status("AFNEVERSENT000000000") is None


def test_fill_over_the_session(venue: Venue) -> None:
    o = order("S1", 1_000)
    venue.broker.submit(o)
    venue.session(TRADE)
    state = venue.broker.order_status(o.client_order_id)
    assert state.status is OrderStatus.FILLED
    assert state.filled_quantity == 1_000 and state.leaves_quantity == 0
    fills = venue.broker.fills(PF, TRADE)
    assert [f.quantity for f in fills] == [334, 333, 333]  # three executions
    assert {f.client_order_id for f in fills} == {o.client_order_id}
    avg = sum(f.quantity * f.price for f in fills) / 1_000
    assert state.avg_price == pytest.approx(avg, rel=1e-9)
    assert venue.broker.positions(PF) == {"S1": 1_000}


def test_partial_fill_then_day_order_expires(venue: Venue) -> None:
    volume = MARKET["S2"][2]
    o = order("S2", 0.15 * volume, side="sell")  # exceeds the 10 % volume cap
    venue.broker.submit(o)
    venue.session(TRADE)
    state = venue.broker.order_status(o.client_order_id)
    assert state.status is OrderStatus.EXPIRED
    assert state.filled_quantity == pytest.approx(0.10 * volume)
    assert "unfilled" in (state.reason or "")
    fills = venue.broker.fills(PF, TRADE)
    assert sum(f.quantity for f in fills) == pytest.approx(0.10 * volume)
    assert venue.broker.positions(PF) == {"S2": -0.10 * volume}


def test_pov_participation_caps_the_fill(venue: Venue) -> None:
    volume = MARKET["S3"][2]
    algo = AlgoInstruction(Algo.POV, participation=0.05)
    o = order("S3", 0.08 * volume, algo=algo)
    venue.broker.submit(o)
    venue.session(TRADE)
    state = venue.broker.order_status(o.client_order_id)
    assert state.status is OrderStatus.EXPIRED
    assert state.filled_quantity == pytest.approx(0.05 * volume)


def test_algo_instructions_reach_the_venue(venue: Venue) -> None:
    algos = {
        "S1": AlgoInstruction(Algo.VWAP, start="09:30:00", end="16:00:00"),
        "S2": AlgoInstruction(Algo.TWAP, start="10:00:00", end="15:00:00", urgency="high"),
        "S3": AlgoInstruction(Algo.POV, participation=0.07),
        "S4": AlgoInstruction(Algo.NONE),
    }
    for sid, algo in algos.items():
        venue.broker.submit(order(sid, 100, algo=algo))
    booked = {r["security_id"]: r for r in venue.at_venue().values()}
    assert {s: r["algo"] for s, r in booked.items()} == {s: a.algo.value for s, a in algos.items()}
    assert booked["S3"]["participation"] == pytest.approx(0.07)


def test_cash_follows_the_fills(venue_factory) -> None:
    venue = venue_factory(initial_cash=1_000_000.0, cost_model=CostModel(commission_per_share=0.01))
    assert venue.broker.cash(PF) == 1_000_000.0
    venue.broker.submit(order("S1", 1_000))
    venue.broker.submit(order("S2", 0.15 * MARKET["S2"][2], side="sell"))  # partly, expires
    venue.session(TRADE)
    fills = venue.broker.fills(PF, TRADE)
    assert len(fills) == 6 and all(f.commission > 0 for f in fills)
    flow = sum(f.signed_quantity * f.price + f.commission for f in fills)
    assert venue.broker.cash(PF) == pytest.approx(1_000_000.0 - flow, abs=1e-6)
    assert venue.broker.cash(PF) == pytest.approx(venue.engine.cash(PF), abs=1e-6)


def test_broker_rejects_an_order(venue_factory) -> None:
    venue = venue_factory(
        reject_if=lambda o: "security not borrowable" if o.security_id == "S2" else None
    )
    o = order("S2", 500, side="sell")
    state = venue.broker.submit(o)
    assert state.status is OrderStatus.REJECTED
    assert state.reason == "security not borrowable"
    venue.session(TRADE)
    assert venue.broker.fills(PF, TRADE) == []
    assert venue.broker.order_status(o.client_order_id).status is OrderStatus.REJECTED


def test_cancel_before_the_session(venue: Venue) -> None:
    o = order("S4", 700, side="sell")
    venue.broker.submit(o)
    state = venue.broker.cancel(o.client_order_id)
    assert state.status is OrderStatus.CANCELLED and state.leaves_quantity == 0
    venue.session(TRADE)
    assert venue.broker.fills(PF, TRADE) == []
    # Cancelling a finished order changes nothing (FIX: OrderCancelReject "too late").
    assert venue.broker.cancel(o.client_order_id).status is OrderStatus.CANCELLED
    with pytest.raises(BrokerError):
        venue.broker.cancel("AFNEVERSENT000000000")


def test_state_survives_a_restart(venue: Venue) -> None:
    o = order("S5", 2_000)
    first = venue.broker.submit(o)
    venue.session(TRADE)
    before = venue.broker.order_status(o.client_order_id)
    broker = venue.restart()
    after = broker.order_status(o.client_order_id)
    assert after == before and after.broker_order_id == first.broker_order_id
    assert [f.fill_id for f in broker.fills(PF, TRADE)] == [
        f.fill_id for f in venue.engine.fills(PF, TRADE)
    ]
    # Submitting the same id after the restart still does not create a second order.
    assert broker.submit(o).broker_order_id == first.broker_order_id
    assert len(venue.at_venue()) == 1
