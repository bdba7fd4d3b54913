"""The vendor's time formats: publication instants, ISO-8601 text, epoch nanoseconds.

The trading calendar itself lives in :mod:`pipelines.timeline`; this module only turns
instants into the shapes the vendor files, the REST API and the simulator's indexes use.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from pipelines.timeline import local_instant

#: The vendor's wall clock: publication times and naive timestamps are New York time.
VENDOR_TZ = ZoneInfo("America/New_York")


def publish_instant(day: date, at: time) -> datetime:
    """``day`` at the vendor's wall-clock time ``at`` (New York), as a UTC instant."""
    return local_instant(day, at, VENDOR_TZ)


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
        ts = ts.replace(tzinfo=VENDOR_TZ)
    return ts.astimezone(UTC)


def instant_ns(ts: datetime | None) -> int:
    """Nanoseconds since the epoch (UTC); ``None`` means "never" (int64 max)."""
    if ts is None:
        return int(np.iinfo(np.int64).max)
    return int(pd.Timestamp(ts).as_unit("ns").value)
