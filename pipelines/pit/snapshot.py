"""Point-in-time market data for one day's decision, read from the lake.

Every read is ``as_of(known_at=decision_cutoff(day))``: the day's decision sees exactly
what had been published by the session's decision cutoff
(:func:`pipelines.timeline.decision_cutoff`, 20:00 exchange time), never a later price,
corporate action or restatement. Returns are total returns computed from raw closes and
the corporate actions known at the cutoff::

    r[t] = (close[t] · k[t] + D[t]) / close[t-1] − 1

with ``k`` the split ratio (new shares per old) and ``D`` the cash dividend on ex-date
``t`` (the vendor's own convention, see :mod:`pipelines.vendors.market`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.errors import AlphaFactoryError
from pipelines.lake.interface import Store
from pipelines.timeline import decision_cutoff


class NoMarketDataError(AlphaFactoryError, LookupError):
    """The lake holds no prices for the asked session as known at its cutoff."""


@dataclass(frozen=True)
class MarketSnapshot:
    """Wide panels (rows = sessions ≤ ``day``, columns = security ids) known at the cutoff.

    ``returns`` row ``t`` is the total return from ``t-1`` to ``t`` (NaN when unknown).
    ``sectors``/``shares`` are per security as known on ``day``; ``sentiment`` is wide
    like the prices (NaN where no news score).
    """

    day: dt.date
    known_at: dt.datetime
    close: pd.DataFrame
    volume: pd.DataFrame
    returns: pd.DataFrame
    sectors: pd.Series
    shares: pd.Series
    book_equity: pd.Series
    sentiment: pd.DataFrame

    @property
    def universe(self) -> list[str]:
        """Securities listed, with a sector and a close on ``day`` (sorted)."""
        if self.close.empty or pd.Timestamp(self.day) not in self.close.index:
            return []
        last = self.close.loc[pd.Timestamp(self.day)].to_numpy(dtype=float)
        ok = np.isfinite(last) & (last > 0)
        ids = [str(s) for s in self.close.columns[ok] if s in self.sectors.index]
        return sorted(ids)

    def last_close(self) -> pd.Series:
        return self.close.ffill().iloc[-1] if not self.close.empty else pd.Series(dtype=float)

    def adv_shares(self, window: int = 20) -> pd.Series:
        """Mean daily volume (shares) over the last ``window`` sessions."""
        return self.volume.tail(window).mean()

    def volatility(self, window: int = 63) -> pd.Series:
        """Daily return standard deviation over the last ``window`` sessions."""
        return self.returns.tail(window).std(ddof=1)

    def market_cap(self) -> pd.DataFrame:
        """close × shares outstanding (shares as known on ``day``; a proxy from ADV when
        the security has no fundamentals yet)."""
        shares = self.shares.reindex(self.close.columns)
        proxy = self.volume.mean() * 100.0
        shares = shares.where(shares.notna() & (shares > 0), proxy)
        return self.close * shares


def _wide(frame: pd.DataFrame, value: str) -> pd.DataFrame:
    out = frame.pivot_table(index="valid_date", columns="security_id", values=value, aggfunc="last")
    out.index = pd.DatetimeIndex(out.index)
    return out.sort_index().sort_index(axis=1)


def load_snapshot(lake: Store, day: dt.date, lookback: int = 130) -> MarketSnapshot:
    """Read the ``lookback`` sessions up to ``day`` as known at its decision cutoff."""
    known = decision_cutoff(day)
    start = day - dt.timedelta(days=int(lookback * 1.5) + 10)
    prices = lake.as_of(
        "prices",
        known_at=known,
        valid_at=(start, day),
        columns=["security_id", "close", "volume"],
    ).to_pandas()
    if prices.empty:
        raise NoMarketDataError(
            f"no prices in the lake up to {day} as known at {known.isoformat()}"
        )
    prices["valid_date"] = pd.to_datetime(prices["valid_date"])
    close = _wide(prices, "close")
    volume = _wide(prices, "volume").reindex_like(close)
    close = close.tail(lookback + 1)
    volume = volume.tail(lookback + 1)
    returns = _total_returns(lake, close, known)
    master = lake.as_of("security_master", known_at=known, valid_at=day).to_pandas()
    if not master.empty:
        master = master.sort_values("valid_date").groupby("security_id").tail(1)
        listed = master["listed"].fillna(True).astype(bool)
        master = master[listed & master["sector"].notna()]
    sectors = pd.Series(
        master["sector"].astype(str).to_numpy() if not master.empty else [],
        index=master["security_id"].astype(str).to_numpy() if not master.empty else [],
        dtype=object,
    ).sort_index()
    fund = lake.as_of(
        "fundamentals",
        known_at=known,
        valid_at=(day - dt.timedelta(days=730), day),
        columns=["security_id", "shares_outstanding", "book_equity"],
    ).to_pandas()
    if fund.empty:
        shares = book = pd.Series(dtype=float)
    else:
        fund = fund.sort_values("valid_date")
        last = fund.groupby("security_id")[["shares_outstanding", "book_equity"]].last()
        shares = last["shares_outstanding"].astype(float).dropna()
        book = last["book_equity"].astype(float).dropna()
    sent = lake.as_of(
        "sentiment",
        known_at=known,
        valid_at=(day - dt.timedelta(days=14), day),
        columns=["security_id", "sentiment"],
    ).to_pandas()
    if sent.empty:
        sentiment = pd.DataFrame(index=close.index[-1:], columns=close.columns, dtype=float)
    else:
        sent["valid_date"] = pd.to_datetime(sent["valid_date"])
        sentiment = _wide(sent, "sentiment")
    return MarketSnapshot(
        day=day,
        known_at=known,
        close=close,
        volume=volume,
        returns=returns,
        sectors=sectors,
        shares=shares,
        book_equity=book,
        sentiment=sentiment,
    )


def _total_returns(lake: Store, close: pd.DataFrame, known: dt.datetime) -> pd.DataFrame:
    """Total returns from raw closes and the corporate actions known at ``known``."""
    if close.empty:
        return close.copy()
    start, end = close.index[0].date(), close.index[-1].date()
    k = np.ones(close.shape)
    div = np.zeros(close.shape)
    rows = {ts: i for i, ts in enumerate(close.index)}
    cols = {str(c): j for j, c in enumerate(close.columns)}
    actions = lake.as_of("corporate_actions", known_at=known, valid_at=(start, end)).to_pandas()
    for rec in actions.to_dict("records"):
        i = rows.get(pd.Timestamp(rec["valid_date"]))
        j = cols.get(str(rec["security_id"]))
        if i is None or j is None:
            continue
        ratio, amount = _finite(rec.get("ratio")), _finite(rec.get("amount"))
        if rec["action_type"] == "split" and ratio:
            k[i, j] *= ratio
        elif rec["action_type"] == "dividend" and amount:
            div[i, j] += amount
    prev = close.shift(1).to_numpy(dtype=float)
    values = (close.to_numpy(dtype=float) * k + div) / prev - 1.0
    return pd.DataFrame(values, index=close.index, columns=close.columns)


def _finite(value: object) -> float | None:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return x if np.isfinite(x) else None
