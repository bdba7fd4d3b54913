"""Execution fixtures: a small market, targets, limits, brokers ("venues"), fault wrappers.

``venue`` is parametrized over the paper broker and the FIX broker (QuickFIX initiator
against the loopback simulator), so every test using it is the same lifecycle test for
both. The FIX variant is an integration test and skips only when quickfix is missing.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pipelines.execution import (
    Broker,
    BrokerConnectionError,
    BrokerOrder,
    OrderState,
    PaperBroker,
    SessionBar,
    StaticPriceSource,
)
from pipelines.execution.fix_session import quickfix_available
from pipelines.risk.pretrade import RiskLimits, load_limits

NO_QUICKFIX = "quickfix is not installed (optional extra `fix`: .ci/fix-wheel.sh)"

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


def make_prices() -> StaticPriceSource:
    src = StaticPriceSource()
    for sid, (px, _, vol) in MARKET.items():
        src.add(TRADE, sid, bar(px, vol))
    return src


def make_targets() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "date": [pd.Timestamp(DECISION)] * len(MARKET),
            "portfolio_id": PF,
            "security_id": list(MARKET),
            "target_shares": [t for _, t, _ in MARKET.values()],
            "price": [p for p, _, _ in MARKET.values()],
        }
    )


def make_adv() -> dict[str, float]:
    return {s: v for s, (_, _, v) in MARKET.items()}


def make_limits() -> RiskLimits:
    return load_limits("default")


@pytest.fixture
def prices() -> StaticPriceSource:
    return make_prices()


@pytest.fixture
def targets() -> pd.DataFrame:
    return make_targets()


@pytest.fixture
def adv() -> dict[str, float]:
    return make_adv()


@pytest.fixture
def limits() -> RiskLimits:
    return make_limits()


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


@dataclass
class Venue:
    """A broker under test plus the controls a test needs over the market behind it.

    ``engine`` is the paper engine that really holds the orders (the paper broker itself,
    or the FIX simulator's engine); ``session(day)`` runs the trading session and returns
    once the broker has heard about every resulting execution.
    """

    kind: str
    broker: Any
    engine: PaperBroker
    make: Callable[[], Any]
    acceptor: Any = None
    extra: list[Any] = field(default_factory=list)

    def session(self, day: dt.date | None = None) -> None:
        if self.acceptor is None:
            self.engine.work(day)
        else:
            self.acceptor.work(day)
            self.broker.sync()

    def restart(self) -> Any:
        """Close the broker and open a new instance on the same persistent state."""
        self.broker.close()
        self.broker = self.make()
        self.broker.connect()
        if self.acceptor is None:
            self.engine = self.broker
        return self.broker

    def dropping(self, after: set[int]) -> Broker:
        """A broker whose connection dies right after the given submits reached the venue
        (before their acknowledgement comes back)."""
        if self.acceptor is None:
            return FlakyBroker(self.broker, after)  # type: ignore[return-value]
        self.acceptor.drop_on_orders = set(after)
        return self.broker  # type: ignore[no-any-return]

    def at_venue(self) -> dict[str, dict[str, Any]]:
        orders, _ = self.engine.snapshot()
        return {o["client_order_id"]: o for o in orders}


VENUES = [
    "paper",
    pytest.param(
        "fix",
        marks=[
            pytest.mark.integration,
            pytest.mark.skipif(not quickfix_available(), reason=NO_QUICKFIX),
        ],
    ),
]


def build_venue(kind: str, root: Path, prices: StaticPriceSource, **engine_kw: Any) -> Venue:
    """A connected venue of ``kind`` ("paper" or "fix") with its state under ``root``."""
    if kind == "paper":

        def make_paper() -> PaperBroker:
            return PaperBroker(root / "paper.json", prices, auto_work=False, **engine_kw)

        broker = make_paper()
        broker.connect()
        return Venue("paper", broker, broker, make_paper)
    from pipelines.execution.fix_acceptor import FixAcceptor
    from pipelines.execution.fix_broker import FixBroker

    acceptor = FixAcceptor(root / "sim", prices, **engine_kw).start()

    def make_fix() -> FixBroker:
        return FixBroker(root / "client", port=acceptor.port, timeout=5.0)

    fix_broker = make_fix()
    fix_broker.connect()
    return Venue("fix", fix_broker, acceptor.engine, make_fix, acceptor=acceptor)


def _venues(kind: str, tmp_path: Path, prices: StaticPriceSource) -> Iterator[Callable[..., Venue]]:
    made: list[Venue] = []

    def factory(**engine_kw: Any) -> Venue:
        made.append(build_venue(kind, tmp_path / f"venue{len(made)}", prices, **engine_kw))
        return made[-1]

    yield factory
    for v in made:
        v.broker.close()
        if v.acceptor is not None:
            v.acceptor.stop()


@pytest.fixture(params=VENUES)
def venue_factory(
    request: pytest.FixtureRequest, tmp_path: Path, prices: StaticPriceSource
) -> Iterator[Callable[..., Venue]]:
    """Makes venues of the parametrized kind (paper, FIX); closes them afterwards."""
    yield from _venues(request.param, tmp_path, prices)


@pytest.fixture
def fix_venue_factory(tmp_path: Path, prices: StaticPriceSource) -> Iterator[Callable[..., Venue]]:
    """Makes FIX venues only (FIX-session tests)."""
    if not quickfix_available():
        pytest.skip(NO_QUICKFIX)
    yield from _venues("fix", tmp_path, prices)


@pytest.fixture
def venue(venue_factory: Callable[..., Venue]) -> Venue:
    return venue_factory()
