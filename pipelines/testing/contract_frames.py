"""Clean synthetic mapped frames, for tests and benchmarks of the contracts.

Each frame looks like a vendor file already mapped onto lake column names and satisfies
its contract; tests break one thing at a time.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

#: Publish instant of a daily SFTP folder: 18:00 New York = 23:00 UTC in winter.
PUBLISH_HOUR_UTC = 23


def security_ids(n: int) -> np.ndarray:
    """``S000000``, ``S000001``, … as the vendor spells them."""
    return np.array([f"S{i:06d}" for i in range(n)], dtype=object)


def publish_time(day: dt.date) -> dt.datetime:
    """The (winter) publish instant of ``day``'s folder, UTC."""
    return dt.datetime.combine(day, dt.time(PUBLISH_HOUR_UTC), tzinfo=dt.UTC)


def price_frame(
    n_securities: int, days: list[dt.date] | pd.DatetimeIndex, seed: int = 0
) -> pd.DataFrame:
    """Prices for every security on every day, ordered by day then security."""
    rng = np.random.default_rng(seed)
    days = pd.DatetimeIndex(days)
    n = n_securities * len(days)
    ids = security_ids(n_securities)
    close = np.round(50 * np.exp(rng.normal(0, 0.3, n)), 4)
    spread = np.abs(rng.normal(0, 0.01, n))
    valid = np.repeat(days.values.astype("datetime64[s]"), n_securities)
    known = pd.DatetimeIndex(np.repeat(days.values, n_securities)).tz_localize(
        "UTC"
    ) + pd.Timedelta(hours=PUBLISH_HOUR_UTC)
    return pd.DataFrame(
        {
            "security_id": pd.array(np.tile(ids, len(days)), dtype="str"),
            "ticker": pd.array(np.tile(ids, len(days)), dtype="str"),
            "open": close * (1 + spread / 2),
            "high": close * (1 + spread),
            "low": close * (1 - spread),
            "close": close,
            "volume": rng.integers(0, 1_000_000, n).astype("float64"),
            "currency": pd.array(np.full(n, "USD"), dtype="str"),
            "valid_date": valid,
            "known_at": known.as_unit("us"),
        }
    )
