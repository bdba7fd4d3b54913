"""Trading calendar: XNYS sessions (via exchange_calendars) and vendor publish instants."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import numpy as np
import pandas as pd

NEW_YORK = ZoneInfo("America/New_York")


@lru_cache(maxsize=8)
def _calendar(name: str, first_year: int) -> xcals.ExchangeCalendar:
    # exchange_calendars only covers ~20 years back by default; ask for what we need.
    return xcals.get_calendar(name, start=f"{first_year}-01-01")


def sessions(start: date, end: date, calendar: str = "XNYS") -> list[date]:
    """All trading sessions in ``[start, end]`` (inclusive), ascending."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    cal = _calendar(calendar, start.year - 1)
    idx = cal.sessions_in_range(pd.Timestamp(start), pd.Timestamp(end))
    return [ts.date() for ts in idx]


def local_instant(day: date, at: time, tz: ZoneInfo = NEW_YORK) -> datetime:
    """``day`` at wall-clock time ``at`` in ``tz``, as a UTC datetime (DST-aware)."""
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def next_session_on_or_after(days: np.ndarray, sess: list[date]) -> np.ndarray:
    """Index into ``sess`` of the first session on or after each ``datetime64[D]`` in ``days``.

    Returns ``len(sess)`` where no such session exists.
    """
    sess_arr = np.array(sess, dtype="datetime64[D]")
    return np.searchsorted(sess_arr, days.astype("datetime64[D]"), side="left")


def to_utc_iso(ts: datetime) -> str:
    """Canonical ISO-8601 UTC form used in manifests and REST payloads: ``...Z``."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_instant(text: str) -> datetime:
    """Parse an ISO-8601 instant; naive values are taken as America/New_York wall time."""
    ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=NEW_YORK)
    return ts.astimezone(UTC)


def instant_ns(ts: datetime | None) -> int:
    """Nanoseconds since the epoch (UTC); ``None`` means "never" (int64 max)."""
    if ts is None:
        return int(np.iinfo(np.int64).max)
    return int(pd.Timestamp(ts).as_unit("ns").value)
