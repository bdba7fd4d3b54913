"""The paper broker converts a delisted position to cash at the delisting price, once."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pipelines.backtest.broker import InMemoryPaperBroker
from pipelines.execution import PaperBroker
from pipelines.execution.broker import BrokerOrder
from pipelines.execution.delistings import Delisting
from pipelines.execution.prices import SessionBar, StaticPriceSource

pytestmark = pytest.mark.unit

DAY = dt.date(2024, 3, 5)
ACCOUNT = "pf1"


def _brokers(tmp_path: Path) -> list[tuple[PaperBroker, StaticPriceSource]]:
    file_prices, memory_prices = StaticPriceSource(), StaticPriceSource()
    return [
        (PaperBroker(tmp_path / "paper.json", file_prices), file_prices),
        (InMemoryPaperBroker(memory_prices), memory_prices),
    ]


@pytest.mark.parametrize("kind", [0, 1], ids=["file", "memory"])
def test_long_and_short_delisted_positions_become_cash_once(tmp_path: Path, kind: int) -> None:
    broker, prices = _brokers(tmp_path)[kind]
    broker.connect()
    broker.seed(ACCOUNT, {"A": 100.0, "B": -50.0, "C": 10.0}, cash=1_000.0)
    assert broker.positions(ACCOUNT) == {"A": 100.0, "B": -50.0, "C": 10.0}
    prices.delisted = {
        "A": Delisting("A", DAY, 12.5, "ACQUIRED"),
        "B": Delisting("B", DAY, 4.0, "BANKRUPTCY"),
    }
    assert broker.positions(ACCOUNT) == {"C": 10.0}
    assert broker.cash(ACCOUNT) == pytest.approx(1_000.0 + 100 * 12.5 - 50 * 4.0)
    events = broker.delistings(ACCOUNT)
    assert [(e["security_id"], e["quantity"], e["price"], e["reason"]) for e in events] == [
        ("A", 100.0, 12.5, "ACQUIRED"),
        ("B", -50.0, 4.0, "BANKRUPTCY"),
    ]
    # Reading again books nothing more.
    assert broker.cash(ACCOUNT) == pytest.approx(2_050.0)
    assert len(broker.delistings(ACCOUNT)) == 2


def test_an_order_working_on_the_delisting_day_fills_first(tmp_path: Path) -> None:
    prices = StaticPriceSource()
    broker = PaperBroker(tmp_path / "paper.json", prices, max_volume_share=1.0, slices=1)
    broker.connect()
    broker.seed(ACCOUNT, {"A": 100.0}, cash=0.0)
    broker.submit(BrokerOrder("O1", ACCOUNT, DAY, "A", "sell", 40.0))
    prices.delisted = {"A": Delisting("A", DAY, 10.0, "ACQUIRED")}
    # The session's bar is not published yet: the order works, the position waits.
    assert broker.positions(ACCOUNT) == {"A": 100.0}
    prices.add(DAY, "A", SessionBar(open=10.0, high=10.0, low=10.0, close=10.0, volume=1e6))
    assert broker.positions(ACCOUNT) == {}
    [fill] = broker.fills(ACCOUNT)
    assert fill.quantity == 40.0
    [event] = broker.delistings(ACCOUNT)
    assert event["quantity"] == 60.0
    assert broker.cash(ACCOUNT) == pytest.approx(40.0 * fill.price + 60.0 * 10.0)


def test_an_announced_delisting_is_not_in_force_before_its_date(tmp_path: Path) -> None:
    """A source that may see everything (known_at far ahead) still books a delisting only
    from its date on, as corporate actions (issue 14: a delisting announced for next month
    would have cashed the position out today)."""
    import pandas as pd

    from pipelines.execution.prices import LakePriceSource
    from pipelines.lake import Lake

    lake = Lake(str(tmp_path / "lake"))
    today = dt.datetime.now(dt.UTC).date()
    ahead = today + dt.timedelta(days=30)
    known = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    lake.write(
        "security_master",
        pd.DataFrame(
            {
                "security_id": ["A"],
                "ticker": ["AA"],
                "name": ["A Inc"],
                "sector": ["Tech"],
                "exchange": ["XNYS"],
                "currency": ["USD"],
                "listed": [False],
                "list_date": [dt.date(2000, 1, 3)],
                "delist_date": [ahead],
                "delist_reason": ["ACQUIRED"],
                "valid_date": [ahead],
            }
        ),
        known_at=known,
    )
    lake.write(
        "prices",
        pd.DataFrame(
            {
                "security_id": ["A"],
                "ticker": ["AA"],
                "valid_date": [today - dt.timedelta(days=3)],
                "open": [10.0],
                "high": [10.0],
                "low": [10.0],
                "close": [10.0],
                "volume": [1e6],
                "currency": ["USD"],
            }
        ),
        known_at=known,
    )
    far = LakePriceSource(lake, known_at=dt.datetime(2100, 1, 1, tzinfo=dt.UTC))
    assert far.delistings(["A"]) == {}
    # …and from its date on it is (the lake as known then).
    from pipelines.execution.delistings import lake_delistings

    assert set(lake_delistings(lake, ["A"], known_at=known, through=ahead)) == {"A"}
