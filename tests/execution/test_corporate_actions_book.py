"""Splits and cash dividends in the held book: the paper broker and our own books.

Issue 14: the paper broker booked fills only, so a 2:1 split showed up as a 50 % loss on
a long (and a gain on a short) and dividends were never credited or charged; our own
books did the same, so reconciliation matched and the fake P&L landed in ``pnl_trading``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pipelines.execution.broker import BrokerOrder
from pipelines.execution.corporate_actions import BookAction, apply_actions, split_ratios
from pipelines.execution.paper import PaperBroker
from pipelines.execution.prices import SessionBar, StaticPriceSource

pytestmark = pytest.mark.unit

D1, D2, D3, D4 = (dt.date(2024, 6, d) for d in (17, 18, 20, 21))


def _split(sid: str, day: dt.date, ratio: float, aid: str = "S1") -> BookAction:
    return BookAction(sid, day, "split", aid, ratio=ratio)


def _div(sid: str, day: dt.date, amount: float, aid: str) -> BookAction:
    return BookAction(sid, day, "dividend", aid, amount=amount)


def test_apply_actions_long_short_and_two_dividends_on_one_ex_date() -> None:
    actions = [
        _split("A", D2, 2.0),
        _div("A", D2, 0.5, "REG"),  # per share of record: meets the pre-split quantity
        _div("B", D2, 0.25, "REG"),
        _div("B", D2, 1.0, "SPECIAL"),
        _div("C", D2, 9.0, "X"),  # not held: nothing
    ]
    book, cash, applied = apply_actions({"A": 100.0, "B": -40.0}, actions)
    assert book == {"A": 200.0, "B": -40.0}
    assert cash == pytest.approx(100 * 0.5 - 40 * (0.25 + 1.0))
    assert [a.action.action_id for a in applied] == ["REG", "S1", "REG", "SPECIAL"]
    assert split_ratios(actions, D2) == {"A": 2.0}


def _bar(price: float) -> SessionBar:
    return SessionBar(open=price, high=price, low=price, close=price, volume=1e9)


def _broker(tmp_path: Path, source: StaticPriceSource) -> PaperBroker:
    broker = PaperBroker(tmp_path / "account.json", source, initial_cash=1e6)
    broker.connect()
    return broker


def _order(sid: str, side: str, qty: float, day: dt.date, n: int) -> BrokerOrder:
    return BrokerOrder(
        client_order_id=f"O{n}",
        account="P",
        security_id=sid,
        side=side,  # type: ignore[arg-type]
        quantity=qty,
        trade_date=day,
    )


def test_paper_broker_books_split_and_dividends_once_at_the_ex_date(tmp_path: Path) -> None:
    source = StaticPriceSource({D1: {"A": _bar(100.0), "B": _bar(50.0)}})
    source.through = D1
    broker = _broker(tmp_path, source)
    broker.submit(_order("A", "buy", 100, D1, 1))
    broker.submit(_order("B", "sell", 40, D1, 2))
    positions = broker.positions("P")
    assert positions == {"A": 100.0, "B": -40.0}
    cash_before = broker.cash("P")
    assert cash_before is not None
    # D2: the split and two dividends on one ex-date come into force.
    source.actions += [
        _split("A", D2, 2.0),
        _div("A", D2, 0.5, "REG"),
        _div("B", D2, 0.25, "REG"),
        _div("B", D2, 1.0, "SPECIAL"),
    ]
    source.through = D2
    assert broker.positions("P") == {"A": 200.0, "B": -40.0}
    assert broker.cash("P") == pytest.approx(cash_before + 100 * 0.5 - 40 * 1.25)
    # Asking again (or a second process) does not apply them twice.
    assert broker.positions("P") == {"A": 200.0, "B": -40.0}
    assert broker.cash("P") == pytest.approx(cash_before + 100 * 0.5 - 40 * 1.25)
    booked = broker.corporate_actions("P")
    assert [(e["security_id"], e["action_id"]) for e in booked] == [
        ("A", "REG"),
        ("A", "S1"),
        ("B", "REG"),
        ("B", "SPECIAL"),
    ]


def test_split_applies_before_the_ex_date_fills(tmp_path: Path) -> None:
    """An order working on the ex-date fills after the split, in the new share basis."""
    source = StaticPriceSource({D1: {"A": _bar(100.0)}})
    source.through = D1
    broker = _broker(tmp_path, source)
    broker.submit(_order("A", "buy", 100, D1, 1))
    assert broker.positions("P") == {"A": 100.0}
    broker.submit(_order("A", "buy", 10, D2, 2))
    source.add(D2, "A", _bar(50.0))
    source.actions.append(_split("A", D2, 2.0))
    source.through = D2
    assert broker.positions("P") == {"A": 210.0}  # 100 × 2 + 10, not (100 + 10) × 2


def test_a_position_opened_after_the_ex_date_gets_nothing(tmp_path: Path) -> None:
    """A dividend whose ex-date passed while the name was not held does not reach a
    position bought later (the broker's watermark, not the position's age)."""
    source = StaticPriceSource({D1: {"A": _bar(100.0)}})
    source.through = D1
    broker = _broker(tmp_path, source)
    broker.submit(_order("A", "buy", 100, D1, 1))
    broker.positions("P")
    source.actions.append(_div("B", D2, 1.0, "REG"))
    source.through = D2
    broker.positions("P")  # D2 passes with B not held
    broker.submit(_order("B", "buy", 10, D3, 2))
    source.add(D3, "B", _bar(20.0))
    source.through = D3
    cash = broker.cash("P")
    assert broker.positions("P") == {"A": 100.0, "B": 10.0}
    assert not broker.corporate_actions("P")
    assert cash == pytest.approx(1e6 - 100 * 100.0 - 10 * 20.0, abs=1e3)  # costs only


def test_dividend_goes_to_the_holder_of_record_not_the_ex_date_buyer(tmp_path: Path) -> None:
    source = StaticPriceSource({D1: {"A": _bar(100.0)}})
    source.through = D1
    broker = _broker(tmp_path, source)
    broker.submit(_order("A", "buy", 100, D1, 1))
    broker.positions("P")
    broker.submit(_order("A", "sell", 100, D2, 2))  # sold on the ex-date: still paid
    broker.submit(_order("C", "buy", 10, D2, 3))  # bought on the ex-date: not paid
    source.add(D2, "A", _bar(99.0))
    source.add(D2, "C", _bar(10.0))
    source.actions += [_div("A", D2, 1.0, "REG"), _div("C", D2, 0.5, "REG")]
    source.through = D2
    assert broker.positions("P") == {"C": 10.0}
    paid = [(e["security_id"], e["cash"]) for e in broker.corporate_actions("P")]
    assert paid == [("A", 100.0)]
