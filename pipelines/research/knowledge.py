"""Research knowledge time: what "known at the close of session D" means, and sessions.

Every research output for session ``D`` is computed from lake facts with
``known_at <= cutoff(D)``: 20:00 New York on ``D``, after the vendor's 18:00 end-of-day
publication and the 16:30 sentiment release. A fact published later (a late file, a
restatement, an announcement) is invisible to ``D`` however late the job actually runs,
so a re-run for ``D`` always sees the same inputs and writes the same rows.
"""

from __future__ import annotations

import bisect
import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

RESEARCH_TZ = ZoneInfo("America/New_York")
#: Local wall-clock time of the research knowledge cutoff on each session.
CUTOFF_TIME = dt.time(20, 0)


def cutoff(day: dt.date) -> dt.datetime:
    """The knowledge time (UTC) of session ``day``'s research run: 20:00 New York."""
    return dt.datetime.combine(day, CUTOFF_TIME, tzinfo=RESEARCH_TZ).astimezone(dt.UTC)


def _calendar_name() -> str:
    from pipelines.config import get_settings

    return get_settings().calendar


#: First year research sessions are looked up from (one calendar object per process).
FIRST_YEAR = 2000


@lru_cache(maxsize=8)
def _all_sessions(calendar: str, first_year: int) -> tuple[dt.date, ...]:
    # Building an exchange calendar costs ~1 s; build one wide one and bisect into it.
    import exchange_calendars as xcals

    cal = xcals.get_calendar(calendar, start=f"{first_year}-01-01")
    return tuple(ts.date() for ts in cal.sessions)


def sessions_between(start: dt.date, end: dt.date, calendar: str | None = None) -> list[dt.date]:
    """Trading sessions in ``[start, end]`` of the configured exchange calendar."""
    name = calendar or _calendar_name()
    if start.year < FIRST_YEAR:
        from pipelines.timeline import sessions

        return sessions(start, end, name)
    days = _all_sessions(name, FIRST_YEAR)
    if end > days[-1]:
        raise ValueError(f"{end} is after the {name} calendar's last session {days[-1]}")
    return list(days[bisect.bisect_left(days, start) : bisect.bisect_right(days, end)])


def sessions_back(day: dt.date, count: int, calendar: str | None = None) -> list[dt.date]:
    """The ``count`` sessions ending at ``day`` (inclusive when ``day`` is a session)."""
    span = dt.timedelta(days=int(count * 7 / 5) + 20)
    days = sessions_between(day - span, day, calendar)
    while len(days) < count:
        span *= 2
        days = sessions_between(day - span, day, calendar)
    return days[-count:]


def session_offset(day: dt.date, offset: int, calendar: str | None = None) -> dt.date:
    """The session ``offset`` sessions after ``day`` (negative: before)."""
    if offset <= 0:
        return sessions_back(day, 1 - offset, calendar)[0]
    span = dt.timedelta(days=int(offset * 7 / 5) + 20)
    days = sessions_between(day + dt.timedelta(days=1), day + span, calendar)
    return days[offset - 1]
