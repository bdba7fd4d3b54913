"""The broker interface every execution venue implements, and the value types it speaks.

A broker is anything that accepts orders keyed by *our* client order id and reports their
state, fills and the account's positions. Two implementations ship:

* :class:`pipelines.execution.paper.PaperBroker` — the embedded default, fills against the
  vendor's next-session prices;
* :class:`pipelines.execution.fix_broker.FixBroker` — FIX 4.4 over QuickFIX to a real broker
  (or the loopback simulator in :mod:`pipelines.execution.fix_acceptor`).

Contract (what callers may rely on):

* ``submit`` is **idempotent on client order id**: submitting an id the broker already knows
  returns that order's current state and never creates a second order.
* ``order_status`` returns ``None`` only when the broker has never seen the id — so after a
  crash, "status is None" means "safe to send".
* ``open_orders`` lists what is still working, so the kill switch can cancel all of it.
* A lost connection raises :class:`BrokerConnectionError`; the caller reconnects with
  ``close()`` + ``connect()`` and asks ``order_status`` before re-sending.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol, runtime_checkable

from pipelines.errors import AlphaFactoryError

Side = Literal["buy", "sell"]


class TargetsError(AlphaFactoryError, ValueError):
    """Targets handed to execution are not usable (columns, portfolio, NAV)."""


class NoTargetsError(AlphaFactoryError, LookupError):
    """No targets recorded for the asked portfolio and day."""


class BrokerError(AlphaFactoryError, RuntimeError):
    """Any broker failure."""


class BrokerConnectionError(BrokerError):
    """The session to the broker is down; the request may or may not have reached it."""


class BrokerUnavailableError(BrokerError):
    """The broker implementation cannot be used here (e.g. QuickFIX is not installed)."""


class OrderStatus(StrEnum):
    """Lifecycle of an order at the broker (FIX OrdStatus, lower-cased)."""

    PENDING_NEW = "pending_new"
    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def terminal(self) -> bool:
        """No more fills can come (filled, cancelled, rejected, expired)."""
        return self in (
            OrderStatus.FILLED,
            OrderStatus.CANCELLED,
            OrderStatus.REJECTED,
            OrderStatus.EXPIRED,
        )


class Algo(StrEnum):
    """Execution algorithm requested from the broker."""

    NONE = "none"  # plain market/limit order, filled at the open by the paper broker
    VWAP = "vwap"
    TWAP = "twap"
    POV = "pov"


@dataclass(frozen=True)
class AlgoInstruction:
    """Algorithm and its parameters.

    ``start``/``end`` are exchange-local times (``"09:30:00"``) bounding the schedule;
    ``participation`` is the target share of market volume for POV (and a cap for VWAP);
    ``urgency`` is free text some brokers accept (low/medium/high).
    """

    algo: Algo = Algo.VWAP
    start: str | None = None
    end: str | None = None
    participation: float | None = None
    urgency: str | None = None

    def params(self) -> dict[str, str]:
        """Non-empty parameters as strings (for the wire and the orders table)."""
        out: dict[str, str] = {}
        if self.start:
            out["start"] = self.start
        if self.end:
            out["end"] = self.end
        if self.participation is not None:
            out["participation"] = f"{self.participation:g}"
        if self.urgency:
            out["urgency"] = self.urgency
        return out


@dataclass(frozen=True)
class BrokerOrder:
    """One order as sent to a broker. ``quantity`` is unsigned shares; ``side`` the sign."""

    client_order_id: str
    account: str
    trade_date: dt.date
    security_id: str
    side: Side
    quantity: float
    order_type: Literal["market", "limit"] = "market"
    limit_price: float | None = None
    algo: AlgoInstruction = field(default_factory=AlgoInstruction)

    @property
    def signed_quantity(self) -> float:
        return self.quantity if self.side == "buy" else -self.quantity


@dataclass(frozen=True)
class OrderState:
    """The broker's view of one order at a point in time."""

    client_order_id: str
    status: OrderStatus
    quantity: float
    filled_quantity: float = 0.0
    avg_price: float | None = None
    broker_order_id: str | None = None
    reason: str | None = None
    updated_at: dt.datetime | None = None

    @property
    def leaves_quantity(self) -> float:
        """Shares still working (0 once the order is terminal)."""
        if self.status.terminal:
            return 0.0
        return max(self.quantity - self.filled_quantity, 0.0)


@dataclass(frozen=True)
class Fill:
    """One execution. ``fill_id`` is the broker's execution id (unique per broker)."""

    fill_id: str
    client_order_id: str
    account: str
    trade_date: dt.date
    security_id: str
    side: Side
    quantity: float
    price: float
    timestamp: dt.datetime
    commission: float = 0.0
    broker_order_id: str | None = None

    @property
    def signed_quantity(self) -> float:
        return self.quantity if self.side == "buy" else -self.quantity


@runtime_checkable
class Broker(Protocol):
    """What :func:`pipelines.execution.execute_day` needs from a venue (see module doc)."""

    name: str

    def connect(self) -> None:
        """Open the session (idempotent); raise :class:`BrokerConnectionError` if impossible."""
        ...

    def close(self) -> None:
        """Close the session (idempotent). State persisted by the broker survives."""
        ...

    def submit(self, order: BrokerOrder) -> OrderState:
        """Send ``order``; idempotent on ``client_order_id``. Returns the acknowledged state
        (``new`` or ``rejected`` with a reason, or the existing order's state)."""
        ...

    def cancel(self, client_order_id: str) -> OrderState:
        """Cancel the working remainder; returns the resulting state."""
        ...

    def open_orders(self, account: str) -> list[OrderState]:
        """Every order of ``account`` still working at the broker (not terminal), as the
        broker knows it now — without working the session first (the kill switch cancels
        these before anything more can fill)."""
        ...

    def order_status(self, client_order_id: str) -> OrderState | None:
        """Current state, or ``None`` if the broker has never seen this id."""
        ...

    def positions(self, account: str) -> dict[str, float]:
        """The broker's positions (shares, signed) for ``account``; zero positions omitted."""
        ...

    def fills(self, account: str, trade_date: dt.date | None = None) -> list[Fill]:
        """Every execution for ``account`` (optionally one trade date), oldest first."""
        ...

    def cash(self, account: str) -> float | None:
        """The broker's cash balance for ``account``, or ``None`` if it does not report it."""
        ...


def sign(side: Side) -> float:
    """+1 for buys, −1 for sells."""
    return 1.0 if side == "buy" else -1.0


@contextlib.contextmanager
def consistent_reads(broker: Broker) -> Iterator[None]:
    """Within the block, the broker's queries answer from one state of its book.

    A broker that simulates its own market (the paper broker) works its orders on every
    query; a sync asking for each of N orders, then fills, positions and cash, would work
    them N + 3 times, re-reading the session's prices each time (measured: 112 passes,
    40 s of a 50 s reconciliation). Inside the block it works them once, at entry; a
    broker without the hook (FIX, a real account) is queried as is.
    """
    hook = getattr(broker, "consistent_reads", None)
    if hook is None:
        yield
        return
    with hook():
        yield


__all__ = [
    "Algo",
    "AlgoInstruction",
    "Broker",
    "BrokerConnectionError",
    "BrokerError",
    "BrokerOrder",
    "BrokerUnavailableError",
    "Fill",
    "OrderState",
    "OrderStatus",
    "Side",
    "consistent_reads",
    "sign",
]
