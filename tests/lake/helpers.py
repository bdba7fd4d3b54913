"""Small builders for lake tests."""

from __future__ import annotations

import datetime as dt

import pandas as pd


def ts(day: int, hour: int = 22, minute: int = 0, micro: int = 0) -> dt.datetime:
    """A UTC knowledge time in January 2024."""
    return dt.datetime(2024, 1, day, hour, minute, 0, micro, tzinfo=dt.UTC)


def prices(day: int, ids: list[str], close: float = 10.0, **overrides: object) -> pd.DataFrame:
    """A valid ``prices`` frame for trade date 2024-01-<day>."""
    n = len(ids)
    frame = pd.DataFrame(
        {
            "security_id": ids,
            "ticker": [f"T{i}" for i in ids],
            "open": [close] * n,
            "high": [close + 1] * n,
            "low": [close - 1] * n,
            "close": [close] * n,
            "volume": [1000.0] * n,
            "currency": ["USD"] * n,
            "valid_date": [dt.date(2024, 1, day)] * n,
        }
    )
    for col, value in overrides.items():
        frame[col] = value
    return frame
