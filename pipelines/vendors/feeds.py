"""Vendor-shaped tables cut from a :class:`~pipelines.vendors.market.Market`.

Daily SFTP tables use vendor column names (``SECID``, ``PX_LAST`` …, see FORMATS.md);
REST record sources expose the published-time-ordered datasets the API pages through.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, time
from typing import Any, Protocol

import numpy as np
import pandas as pd

from pipelines.vendors.instants import publish_instant, to_utc_iso
from pipelines.vendors.market import SENTIMENT_PUBLISH_TIME, Market

PRICE_COLUMNS = (
    "SECID",
    "TICKER",
    "TRADE_DATE",
    "CRNCY",
    "PX_OPEN",
    "PX_HIGH",
    "PX_LOW",
    "PX_LAST",
    "PX_VOLUME",
)
CORPORATE_ACTION_COLUMNS = (
    "ACTION_ID",
    "SECID",
    "TICKER",
    "ACTION_TYPE",
    "ANNOUNCE_DATE",
    "EX_DATE",
    "PAY_DATE",
    "SPLIT_TO",
    "SPLIT_FROM",
    "DIV_AMOUNT",
    "CRNCY",
)
SECURITY_MASTER_COLUMNS = (
    "SECID",
    "EFFECTIVE_DATE",
    "CHANGE_TYPE",
    "TICKER",
    "PREV_TICKER",
    "ISSUER_NAME",
    "GICS_SECTOR_CODE",
    "GICS_SECTOR",
    "EXCH_CODE",
    "CRNCY",
    "LISTING_DATE",
    "DELISTING_DATE",
    "DELISTING_REASON",
    "STATUS",
)


def _dates(values: Any) -> np.ndarray:
    """ISO dates as strings; NaT becomes the empty string (an empty CSV field)."""
    arr = np.asarray(values, dtype="datetime64[D]")
    out = np.datetime_as_string(arr, unit="D")
    return np.where(np.isnat(arr), "", out)


class DaySlicer:
    """Per-session row slices of a frame sorted by session index (O(log n) per day)."""

    def __init__(self, frame: pd.DataFrame, session_idx: pd.Series | np.ndarray) -> None:
        self._frame = frame.reset_index(drop=True)
        self._idx = np.asarray(session_idx)

    def day(self, t: int) -> pd.DataFrame:
        lo, hi = np.searchsorted(self._idx, t, "left"), np.searchsorted(self._idx, t, "right")
        return self._frame.iloc[int(lo) : int(hi)].reset_index(drop=True)


def prices_frame(m: Market, t: int) -> pd.DataFrame:
    """End-of-day prices for every security listed on session ``t``, ordered by SECID.

    Prices are raw (unadjusted) and rounded to 4 decimals; volume in shares.
    """
    idx = np.flatnonzero(m.alive[t])
    return pd.DataFrame(
        {
            "SECID": m.security_ids[idx],
            "TICKER": m.tickers[m.ticker_code[t, idx]],
            "TRADE_DATE": m.sessions[t].isoformat(),
            "CRNCY": "USD",
            "PX_OPEN": np.round(m.open[t, idx], 4),
            "PX_HIGH": np.round(m.high[t, idx], 4),
            "PX_LOW": np.round(m.low[t, idx], 4),
            "PX_LAST": np.round(m.close[t, idx], 4),
            "PX_VOLUME": m.volume[t, idx],
        }
    )


def corporate_actions_vendor(m: Market) -> pd.DataFrame:
    """Every corporate action in vendor columns, ordered by announcement session."""
    day = m.corporate_actions
    return pd.DataFrame(
        {
            "ACTION_ID": day["action_id"].to_numpy(),
            "SECID": day["security_id"].to_numpy(),
            "TICKER": day["ticker"].to_numpy(),
            "ACTION_TYPE": day["action_type"].to_numpy(),
            "ANNOUNCE_DATE": _dates(day["announce_date"]),
            "EX_DATE": _dates(day["ex_date"]),
            "PAY_DATE": _dates(day["pay_date"]),
            "SPLIT_TO": day["split_to"].to_numpy().astype(object),
            "SPLIT_FROM": day["split_from"].to_numpy().astype(object),
            "DIV_AMOUNT": day["dividend_amount"].to_numpy(),
            "CRNCY": day["currency"].to_numpy(),
        },
        columns=list(CORPORATE_ACTION_COLUMNS),
    ).pipe(_blank_split_fields)


def _blank_split_fields(df: pd.DataFrame) -> pd.DataFrame:
    # Split ratios are meaningless for dividends: write empty fields rather than 0.
    div = (df["ACTION_TYPE"] == "CASH_DIVIDEND").to_numpy()
    for col in ("SPLIT_TO", "SPLIT_FROM"):
        df[col] = df[col].mask(pd.Series(div, index=df.index))
    return df


def security_master_vendor(m: Market) -> pd.DataFrame:
    """Every security-master change in vendor columns, ordered by effective session."""
    day = m.master_events
    return pd.DataFrame(
        {
            "SECID": day["security_id"].to_numpy(),
            "EFFECTIVE_DATE": _dates(day["effective_date"]),
            "CHANGE_TYPE": day["change_type"].to_numpy(),
            "TICKER": day["ticker"].to_numpy(),
            "PREV_TICKER": day["previous_ticker"].to_numpy(),
            "ISSUER_NAME": day["name"].to_numpy(),
            "GICS_SECTOR_CODE": day["sector_code"].to_numpy(),
            "GICS_SECTOR": day["sector"].to_numpy(),
            "EXCH_CODE": day["exchange"].to_numpy(),
            "CRNCY": day["currency"].to_numpy(),
            "LISTING_DATE": _dates(day["listing_date"]),
            "DELISTING_DATE": _dates(day["delisting_date"]),
            "DELISTING_REASON": day["delisting_reason"].to_numpy(),
            "STATUS": day["status"].to_numpy(),
        },
        columns=list(SECURITY_MASTER_COLUMNS),
    )


# --- REST record sources -------------------------------------------------------------------


class PublishedDataset(Protocol):
    """A dataset ordered by publication time, addressable by position."""

    def count_published_until(self, ns: int) -> int:
        """Number of records with ``published_at <= ns`` (nanoseconds since the epoch, UTC)."""
        ...

    def records(self, lo: int, hi: int) -> list[dict[str, Any]]:
        """JSON-ready records at positions ``[lo, hi)``."""
        ...


def _ns(ts: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    return np.asarray(pd.DatetimeIndex(ts).as_unit("ns").asi8)


class FrameSource:
    """A :class:`PublishedDataset` over a DataFrame already sorted by ``published_at``."""

    def __init__(self, frame: pd.DataFrame, to_json: Callable[[pd.DataFrame], pd.DataFrame]):
        self._frame = frame.reset_index(drop=True)
        self._pub = _ns(self._frame["published_at"])
        if len(self._pub) and np.any(np.diff(self._pub) < 0):
            raise ValueError("frame must be sorted by published_at")
        self._to_json = to_json

    def count_published_until(self, ns: int) -> int:
        return int(np.searchsorted(self._pub, ns, side="right"))

    def records(self, lo: int, hi: int) -> list[dict[str, Any]]:
        page = self._to_json(self._frame.iloc[lo:hi])
        return page.to_dict(orient="records")  # type: ignore[return-value]


def _iso_ts(s: pd.Series) -> list[str]:
    return [to_utc_iso(ts) for ts in s]


def fundamentals_json(df: pd.DataFrame) -> pd.DataFrame:
    """Fundamentals page as JSON-ready columns (ISO dates/instants, native numbers)."""
    out = df.copy()
    out["fiscal_period_end"] = _dates(df["fiscal_period_end"])
    out["published_at"] = _iso_ts(df["published_at"])
    return out.astype(object)


def master_records(m: Market, publish_time: time) -> pd.DataFrame:
    """Master changes with the REST publication instant (the day's SFTP publish time)."""
    ev = m.master_events.drop(columns=["effective_idx"]).copy()
    pub = [publish_instant(m.sessions[t], publish_time) for t in m.master_events["effective_idx"]]
    ev.insert(0, "published_at", pd.to_datetime(pub, utc=True))
    return ev


def master_json(df: pd.DataFrame) -> pd.DataFrame:
    """Security-master page as JSON-ready columns."""
    out = df.copy()
    for col in ("effective_date", "listing_date", "delisting_date"):
        out[col] = [v or None for v in _dates(df[col])]
    out["published_at"] = _iso_ts(df["published_at"])
    return out.astype(object)


class SentimentSource:
    """Daily sentiment records (``T × listed`` of them) without materializing a frame.

    Order: by session (published 16:30 New York on that session), then SECID.
    """

    def __init__(self, m: Market, publish_time: time = SENTIMENT_PUBLISH_TIME):
        self._m = m
        self._day_pub = np.array(
            [publish_instant(d, publish_time).timestamp() * 1e9 for d in m.sessions], dtype=np.int64
        )
        self._day_iso = [to_utc_iso(publish_instant(d, publish_time)) for d in m.sessions]
        counts = m.alive.sum(axis=1)
        self._offsets = np.concatenate([[0], np.cumsum(counts)])

    def count_published_until(self, ns: int) -> int:
        return int(self._offsets[np.searchsorted(self._day_pub, ns, side="right")])

    def records(self, lo: int, hi: int) -> list[dict[str, Any]]:
        m = self._m
        out: list[dict[str, Any]] = []
        t = int(np.searchsorted(self._offsets, lo, side="right")) - 1
        pos = lo
        while pos < hi and t < len(m.sessions):
            idx = np.flatnonzero(m.alive[t])
            a, b = pos - int(self._offsets[t]), min(hi - int(self._offsets[t]), len(idx))
            sel = idx[a:b]
            day, pub = m.sessions[t].isoformat(), self._day_iso[t]
            scores = np.round(m.sentiment[t, sel].astype(np.float64), 4)
            for sid, score, n in zip(
                m.security_ids[sel], scores, m.news_count[t, sel], strict=True
            ):
                out.append(
                    {
                        "security_id": str(sid),
                        "date": day,
                        "sentiment_score": float(score),
                        "news_count": int(n),
                        "published_at": pub,
                    }
                )
            pos += b - a
            t += 1
        return out


def sentiment_frame(m: Market, start: date | None = None, end: date | None = None) -> pd.DataFrame:
    """Long sentiment table (security_id, date, sentiment_score, news_count, published_at)."""
    days = np.array(m.sessions, dtype="datetime64[D]")
    t0 = 0 if start is None else int(np.searchsorted(days, np.datetime64(start, "D")))
    t1 = len(days) if end is None else int(np.searchsorted(days, np.datetime64(end, "D"), "right"))
    tt, ii = np.nonzero(m.alive[t0:t1])
    tt = tt + t0
    pub = pd.to_datetime(
        [publish_instant(d, SENTIMENT_PUBLISH_TIME) for d in m.sessions[t0:t1]], utc=True
    )
    return pd.DataFrame(
        {
            "security_id": m.security_ids[ii],
            "date": np.array(m.sessions, dtype="datetime64[D]")[tt],
            "sentiment_score": np.round(m.sentiment[tt, ii].astype(np.float64), 4),
            "news_count": m.news_count[tt, ii],
            "published_at": pub[tt - t0],
        }
    )
