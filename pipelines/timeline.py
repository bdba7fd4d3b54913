"""Time, in one place: the trading calendar, the named cutoffs of a session, the clock.

Every other module asks this one; nothing else builds an exchange calendar, types out a
cutoff time or a "know everything" timestamp.

* :func:`trading_calendar` — the configured exchange's sessions (``ALPHAFACTORY_CALENDAR``,
  exchange-calendars name) from ``ALPHAFACTORY_CALENDAR_START`` (default 1990-01-01) to the
  end of the year two years ahead. A date outside that range raises
  :class:`OutsideCalendarError`, one line naming the range.
* :func:`decision_cutoff` — session ``D``'s knowledge cutoff: every research, portfolio and
  execution output for ``D`` is computed from lake facts with ``known_at <= decision_cutoff(D)``
  and stamped with it (default 20:00 in the exchange's time zone, after the vendor's 18:00
  publication; ``ALPHAFACTORY_DECISION_CUTOFF``). :func:`run_time` is when the daily DAGs
  start (default 19:00, ``ALPHAFACTORY_RUN_TIME``).
* :data:`LATEST` — "everything we know": a knowledge time after any real one.
  :data:`ALL_DATES` — a valid-time range wider than any real one.
* :class:`Clock` — what a stage calls instead of ``datetime.now`` (injectable in tests).

``exchange_calendars`` (which imports pandas) is imported on first use, so DAG files and
the Airflow timetable can import this module at parse time for free.
"""

from __future__ import annotations

import bisect
import datetime as dt
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo

from pipelines.errors import AlphaFactoryError

#: A knowledge time after every real one: ``as_of(..., known_at=LATEST)`` sees everything.
LATEST = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)
#: A valid-time range containing every real business date.
ALL_DATES: tuple[dt.date, dt.date] = (dt.date(1900, 1, 1), dt.date(2199, 12, 31))

#: A callable returning the current instant (UTC-aware). Stages take one instead of
#: calling ``datetime.now`` so a re-run or a backtest stamps the same times.
Clock = Callable[[], dt.datetime]


def system_clock() -> dt.datetime:
    """The wall clock, UTC-aware."""
    return dt.datetime.now(dt.UTC)


def fixed_clock(at: dt.datetime) -> Clock:
    """A clock stopped at ``at`` (tests, replays)."""
    if at.tzinfo is None:
        raise ValueError(f"fixed_clock needs a timezone-aware instant, got {at!r}")
    return lambda: at


class OutsideCalendarError(AlphaFactoryError, ValueError):
    """A date outside the range the trading calendar covers."""


class NotASessionError(AlphaFactoryError, ValueError):
    """A date that is not a trading session where one is required."""


class DateRangeError(AlphaFactoryError, ValueError):
    """A date range that ends before it starts."""


@dataclass(frozen=True)
class TradingCalendar:
    """The sessions of one exchange over the dates ``start .. end`` (inclusive).

    Pure Python over a sorted tuple of dates: bisecting is far cheaper than pandas, and
    one calendar object serves the whole process. ``first``/``last`` are the first and
    last sessions; any date in ``start .. end`` may be asked about.
    """

    name: str
    tz: ZoneInfo
    days: tuple[dt.date, ...]
    start: dt.date
    end: dt.date

    @property
    def first(self) -> dt.date:
        return self.days[0]

    @property
    def last(self) -> dt.date:
        return self.days[-1]

    def check(self, day: dt.date) -> dt.date:
        """``day`` itself; :class:`OutsideCalendarError` when outside the calendar's range."""
        if not self.start <= day <= self.end:
            raise OutsideCalendarError(
                f"{day} is outside the {self.name} calendar's range "
                f"{self.start}..{self.end} (ALPHAFACTORY_CALENDAR_START sets the start)"
            )
        return day

    def is_session(self, day: dt.date) -> bool:
        self.check(day)
        i = bisect.bisect_left(self.days, day)
        return i < len(self.days) and self.days[i] == day

    def require_session(self, day: dt.date) -> dt.date:
        """``day`` when it is a session; otherwise :class:`NotASessionError` naming the
        nearest sessions on either side."""
        if self.is_session(day):
            return day
        before = self.previous(day)
        after = self.next(day)
        near = " and ".join(str(d) for d in (before, after) if d is not None)
        raise NotASessionError(f"{day} is not a {self.name} session (nearest: {near})")

    def sessions(self, start: dt.date, end: dt.date) -> list[dt.date]:
        """All sessions in ``[start, end]``, ascending (both ends checked against the range)."""
        if end < start:
            raise DateRangeError(f"end {end} is before start {start}")
        self.check(start)
        self.check(end)
        return list(
            self.days[bisect.bisect_left(self.days, start) : bisect.bisect_right(self.days, end)]
        )

    def at_or_before(self, day: dt.date) -> dt.date | None:
        i = bisect.bisect_right(self.days, self.check(day))
        return self.days[i - 1] if i else None

    def at_or_after(self, day: dt.date) -> dt.date | None:
        i = bisect.bisect_left(self.days, self.check(day))
        return self.days[i] if i < len(self.days) else None

    def previous(self, day: dt.date) -> dt.date | None:
        """The last session strictly before ``day`` (None at the calendar's start)."""
        i = bisect.bisect_left(self.days, self.check(day))
        return self.days[i - 1] if i else None

    def next(self, day: dt.date) -> dt.date | None:
        """The first session strictly after ``day`` (None at the calendar's end)."""
        i = bisect.bisect_right(self.days, self.check(day))
        return self.days[i] if i < len(self.days) else None

    def next_session(self, day: dt.date) -> dt.date:
        """Like :meth:`next`, but an error instead of None."""
        nxt = self.next(day)
        if nxt is None:
            raise OutsideCalendarError(
                f"no {self.name} session after {day} (calendar ends {self.last})"
            )
        return nxt

    def previous_session(self, day: dt.date) -> dt.date:
        """Like :meth:`previous`, but an error instead of None."""
        prev = self.previous(day)
        if prev is None:
            raise OutsideCalendarError(
                f"no {self.name} session before {day} (calendar starts {self.first})"
            )
        return prev

    def offset(self, day: dt.date, n: int) -> dt.date:
        """The session ``n`` sessions after ``day`` (``n`` < 0: before; 0: ``day`` itself if
        a session, else the session before it)."""
        if n > 0:
            i = bisect.bisect_right(self.days, self.check(day)) + n - 1
        else:
            i = bisect.bisect_right(self.days, self.check(day)) - 1 + n
        if not 0 <= i < len(self.days):
            raise OutsideCalendarError(
                f"{n:+d} sessions from {day} is outside the {self.name} calendar's range "
                f"{self.start}..{self.end}"
            )
        return self.days[i]

    def back(self, day: dt.date, count: int) -> list[dt.date]:
        """The ``count`` sessions ending at ``day`` (inclusive when ``day`` is a session)."""
        end = bisect.bisect_right(self.days, self.check(day))
        if count > end:
            raise OutsideCalendarError(
                f"{count} sessions back from {day} reach before the {self.name} calendar's "
                f"start {self.first}"
            )
        return list(self.days[end - count : end])

    def at(self, day: dt.date, local: dt.time) -> dt.datetime:
        """``day`` at wall-clock ``local`` in the exchange's zone, as a UTC instant (DST-aware)."""
        return local_instant(day, local, self.tz)


def local_instant(day: dt.date, at: dt.time, tz: ZoneInfo) -> dt.datetime:
    """``day`` at wall-clock time ``at`` in ``tz``, as a UTC datetime (DST-aware)."""
    return dt.datetime.combine(day, at, tzinfo=tz).astimezone(dt.UTC)


_LOCK = threading.Lock()


@lru_cache(maxsize=8)
def _build(name: str, start: dt.date, end: dt.date) -> TradingCalendar:
    # Lazy: exchange_calendars imports pandas (DAG parsing must not pay for it). Building
    # a calendar costs about a second; one per (name, range) per process.
    import exchange_calendars as xcals

    try:
        cal = xcals.get_calendar(name, start=start.isoformat(), end=end.isoformat())
    except xcals.errors.InvalidCalendarName as exc:
        raise OutsideCalendarError(f"unknown exchange calendar {name!r}") from exc
    days = tuple(ts.date() for ts in cal.sessions)
    return TradingCalendar(name=name, tz=ZoneInfo(str(cal.tz)), days=days, start=start, end=end)


def calendar_range(today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """The configured range: the start setting to 31 December two years after ``today``."""
    from pipelines.config import get_settings

    today = today or dt.date.today()
    return get_settings().calendar_start, dt.date(today.year + 2, 12, 31)


def trading_calendar(name: str | None = None) -> TradingCalendar:
    """The trading calendar ``name`` (default: the configured one), cached per process."""
    from pipelines.config import get_settings

    start, end = calendar_range()
    with _LOCK:
        return _build(name or get_settings().calendar, start, end)


def sessions(start: dt.date, end: dt.date, calendar: str | None = None) -> list[dt.date]:
    """Sessions in ``[start, end]`` of the configured (or named) calendar."""
    return trading_calendar(calendar).sessions(start, end)


def _time_setting(field: str) -> dt.time:
    from pipelines.config import get_settings

    value: dt.time = getattr(get_settings(), field)
    return value


def decision_cutoff(day: dt.date, calendar: str | None = None) -> dt.datetime:
    """Session ``day``'s knowledge cutoff (UTC): the decision time in the exchange's zone.

    What every stage of ``day`` may know, and the ``known_at`` its outputs are stamped with.
    """
    return trading_calendar(calendar).at(day, _time_setting("decision_cutoff"))


def run_time(day: dt.date, calendar: str | None = None) -> dt.datetime:
    """When session ``day``'s daily DAGs start (UTC): the run time in the exchange's zone."""
    return trading_calendar(calendar).at(day, _time_setting("run_time"))


def decision_cutoffs(days: Iterable[dt.date], calendar: str | None = None) -> list[dt.datetime]:
    """:func:`decision_cutoff` of each of ``days``."""
    cal = trading_calendar(calendar)
    at = _time_setting("decision_cutoff")
    return [cal.at(d, at) for d in days]
