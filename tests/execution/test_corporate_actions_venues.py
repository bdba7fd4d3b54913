"""Corporate actions at both venues: the paper broker and the FIX simulator (whose engine
is the paper broker) report positions and cash after a split and a dividend, so
reconciliation keeps matching on the FIX path too (issue 14)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from pipelines.execution import BrokerOrder
from pipelines.execution.corporate_actions import BookAction
from pipelines.execution.prices import StaticPriceSource

from .conftest import PF, TRADE, Venue

pytestmark = pytest.mark.unit

EX = TRADE + dt.timedelta(days=1)


def test_split_and_dividend_reach_the_reported_positions_and_cash(
    venue_factory: Callable[..., Venue], prices: StaticPriceSource
) -> None:
    venue = venue_factory()
    broker = venue.broker
    prices.through = TRADE
    broker.submit(BrokerOrder("CA1", PF, TRADE, "S1", "buy", 100))
    venue.session(TRADE)
    assert broker.positions(PF) == {"S1": 100}
    cash = broker.cash(PF)
    prices.actions += [
        BookAction("S1", EX, "split", "SPLIT-1", ratio=3.0),
        BookAction("S1", EX, "dividend", "REG-1", amount=0.4),
    ]
    prices.through = EX
    venue.session(EX)
    assert broker.positions(PF) == {"S1": 300}
    if cash is not None:  # the FIX client asks the venue (collateral inquiry)
        assert broker.cash(PF) == pytest.approx(cash + 100 * 0.4)
    assert [e["action_id"] for e in venue.engine.corporate_actions(PF)] == ["REG-1", "SPLIT-1"]
