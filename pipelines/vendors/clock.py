"""Injectable clocks: what the vendor believes "now" is.

Every visibility decision (is a day's folder published? is a REST record visible?) goes
through a :class:`Clock`, so tests can freeze or move time and the demo can pretend that
all history up to some date is already published.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Source of the current instant (timezone-aware, UTC)."""

    def now(self) -> datetime: ...


def _as_utc(ts: datetime) -> datetime:
    if ts.tzinfo is None:
        raise ValueError("clock instants must be timezone-aware")
    return ts.astimezone(UTC)


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class FrozenClock:
    """A clock that only moves when told to (thread-safe); the default for tests."""

    instant: datetime
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.instant = _as_utc(self.instant)

    def now(self) -> datetime:
        with self._lock:
            return self.instant

    def set(self, instant: datetime) -> None:
        """Jump to ``instant`` (may go backwards; the simulator does not care)."""
        with self._lock:
            self.instant = _as_utc(instant)

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by ``delta`` and return the new instant."""
        with self._lock:
            self.instant = self.instant + delta
            return self.instant


@dataclass
class ShiftedClock:
    """Real time flowing from a chosen starting instant (for live-looking demos)."""

    start: datetime
    _t0: float = field(default_factory=time.monotonic, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.start = _as_utc(self.start)

    def now(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self._t0)
