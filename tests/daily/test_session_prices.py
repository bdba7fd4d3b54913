"""Reconciliation reads the session's bars through the broker's price source when that
source answers the same question (same store, knowledge time and lookback)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest

from pipelines.backtest.broker import CachedPrices
from pipelines.daily.stages import _session_prices
from pipelines.execution import LakePriceSource
from pipelines.execution.prices import SessionBar
from pipelines.timeline import decision_cutoff

pytestmark = pytest.mark.unit

DAY = dt.date(2024, 3, 4)


def _ctx(store: object, prices: object) -> Any:
    return SimpleNamespace(store=store, day=DAY, broker=SimpleNamespace(prices=prices))


class _Counting(LakePriceSource):
    def __init__(self, store: Any) -> None:
        super().__init__(store, known_at=decision_cutoff(DAY))
        self.reads = 0

    def session_all(self, trade_date: dt.date) -> dict[str, SessionBar]:
        self.reads += 1
        return {"A": SessionBar(1.0, 1.0, 1.0, 1.0, 10.0)}


def test_the_broker_source_is_reused_only_when_it_answers_the_same_question() -> None:
    store: Any = object()
    counting = _Counting(store)
    cached = CachedPrices(counting)
    assert _session_prices(_ctx(store, cached)) is cached
    # One read of the session's bars for the broker's fills and the reconciliation.
    assert (
        cached.session(DAY, ["A"]) == cached.session_all(DAY) == {"A": cached.session_all(DAY)["A"]}
    )
    assert counting.reads == 1
    # Another store, another knowledge time, or no price source: a lake source of its own.
    for ctx in (
        _ctx(object(), cached),
        _ctx(store, None),
        _ctx(
            store,
            CachedPrices(
                LakePriceSource(store, known_at=decision_cutoff(DAY + dt.timedelta(days=1)))
            ),
        ),
    ):
        own = _session_prices(ctx)
        assert isinstance(own, LakePriceSource) and own is not cached.source
        assert own.lake is ctx.store and own.known_at == decision_cutoff(DAY)
