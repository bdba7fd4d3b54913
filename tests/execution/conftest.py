"""Execution fixtures: a small market, targets, limits, a paper broker, fault wrappers."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from pipelines.execution import (
    BrokerConnectionError,
    BrokerOrder,
    OrderState,
    PaperBroker,
    SessionBar,
    StaticPriceSource,
)
from pipelines.risk.pretrade import RiskLimits, load_limits

PF = "pf1"
DECISION = dt.date(2024, 1, 2)
TRADE = dt.date(2024, 1, 3)
NAV = 10_000_000.0
# security -> (decision price, target shares, session volume)
MARKET: dict[str, tuple[float, float, float]] = {
    "S1": (100.0, 1_000, 2_000_000),
    "S2": (50.0, -2_000, 2_000_000),
    "S3": (20.0, 3_000, 2_000_000),
    "S4": (80.0, -1_000, 2_000_000),
    "S5": (40.0, 2_000, 2_000_000),
    "S6": (25.0, -4_000, 2_000_000),
}


def bar(price: float, volume: float) -> SessionBar:
    return SessionBar(
        open=price * 1.002,
        high=price * 1.01,
        low=price * 0.99,
        close=price * 1.004,
        volume=volume,
        adv=volume,
        sigma=0.02,
    )


@pytest.fixture
def prices() -> StaticPriceSource:
    src = StaticPriceSource()
    for sid, (px, _, vol) in MARKET.items():
        src.add(TRADE, sid, bar(px, vol))
    return src


@pytest.fixture
def targets() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "date": [pd.Timestamp(DECISION)] * len(MARKET),
            "portfolio_id": PF,
            "security_id": list(MARKET),
            "target_shares": [t for _, t, _ in MARKET.values()],
            "price": [p for p, _, _ in MARKET.values()],
        }
    )


@pytest.fixture
def adv() -> dict[str, float]:
    return {s: v for s, (_, _, v) in MARKET.items()}


@pytest.fixture
def limits() -> RiskLimits:
    return load_limits("default").model_copy(update={"kill_switch_file": None})


@pytest.fixture
def paper(tmp_path: Path, prices: StaticPriceSource) -> PaperBroker:
    broker = PaperBroker(tmp_path / "paper" / "state.json", prices)
    broker.connect()
    return broker


class FlakyBroker:
    """Wraps a broker; the submits numbered in ``drop_after`` reach the broker but the
    connection drops before the answer comes back (the nastiest case)."""

    def __init__(self, inner: object, drop_after: set[int]) -> None:
        self.inner = inner
        self.name = inner.name  # type: ignore[attr-defined]
        self.drop_after = drop_after
        self.submits = 0
        self.down = False
        self.connects = 0

    def connect(self) -> None:
        self.connects += 1
        self.down = False
        self.inner.connect()  # type: ignore[attr-defined]

    def close(self) -> None:
        self.inner.close()  # type: ignore[attr-defined]

    def _check(self) -> None:
        if self.down:
            raise BrokerConnectionError("connection reset by peer")

    def submit(self, order: BrokerOrder) -> OrderState:
        self._check()
        self.submits += 1
        state = self.inner.submit(order)  # type: ignore[attr-defined]
        if self.submits in self.drop_after:
            self.down = True
            raise BrokerConnectionError("connection reset by peer")
        return state  # type: ignore[no-any-return]

    def __getattr__(self, item: str) -> object:
        attr = getattr(self.inner, item)
        if callable(attr) and item in {"cancel", "order_status", "positions", "fills", "cash"}:

            def guarded(*a: object, **k: object) -> object:
                self._check()
                return attr(*a, **k)

            return guarded
        return attr


class KilledAfter:
    """Wraps a broker; the task "dies" (raises) right after the N-th submit reached it."""

    def __init__(self, inner: object, n: int) -> None:
        self.inner = inner
        self.name = inner.name  # type: ignore[attr-defined]
        self.n = n
        self.submits = 0

    def submit(self, order: BrokerOrder) -> OrderState:
        state = self.inner.submit(order)  # type: ignore[attr-defined]
        self.submits += 1
        if self.submits >= self.n:
            raise SystemExit("worker killed")
        return state  # type: ignore[no-any-return]

    def __getattr__(self, item: str) -> object:
        return getattr(self.inner, item)


class CountingBroker:
    """Wraps a broker and records every client order id submitted."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.name = inner.name  # type: ignore[attr-defined]
        self.sent: list[str] = []

    def submit(self, order: BrokerOrder) -> OrderState:
        self.sent.append(order.client_order_id)
        return self.inner.submit(order)  # type: ignore[attr-defined,no-any-return]

    def __getattr__(self, item: str) -> object:
        return getattr(self.inner, item)


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError("condition not met in time")
