"""Small builders for lake tests."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd


def ts(day: int, hour: int = 22, minute: int = 0, micro: int = 0) -> dt.datetime:
    """A UTC knowledge time in January 2024."""
    return dt.datetime(2024, 1, day, hour, minute, 0, micro, tzinfo=dt.UTC)


def prices(day: int, ids: list[str], close: float = 10.0, **overrides: Any) -> pd.DataFrame:
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


def master(rows: list[tuple[str, str, str, dt.date]]) -> pd.DataFrame:
    """Security-master rows ``(security_id, ticker, sector, effective date)``."""
    return pd.DataFrame(
        {
            "security_id": [r[0] for r in rows],
            "ticker": [r[1] for r in rows],
            "name": [r[1] + " Inc" for r in rows],
            "sector": [r[2] for r in rows],
            "exchange": ["XNYS"] * len(rows),
            "currency": ["USD"] * len(rows),
            "listed": [True] * len(rows),
            "list_date": [dt.date(2020, 1, 1)] * len(rows),
            "delist_date": [None] * len(rows),
            "delist_reason": [None] * len(rows),
            "valid_date": [r[3] for r in rows],
        }
    )
