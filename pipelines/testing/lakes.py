"""Simulated lakes: the vendor simulator's market as silver lake rows (tests and benchmarks).

:func:`simulated_lake` is the one factory every test and benchmark uses to get a lake
holding a simulated market (tests reach it through the ``make_simulated_lake`` fixture of
``tests/conftest.py`` or, in module- and session-scoped fixtures, directly). It writes
exactly the rows the ingestion would load (same columns, same ``known_at`` = vendor
publication time) without going through files, contracts or servers:

* ``prices``: every listed (session, security), known at the session's 18:00 NY publish;
* ``corporate_actions``: valid at the ex-date, known at the announcement session's publish;
* ``security_master``: valid from the effective date, known at that session's publish;
* ``fundamentals``: valid at the fiscal period end, known at ``published_at`` (restatements
  are later versions);
* ``sentiment``: valid on the news session, known at 16:30 NY that session.

:func:`perturb_after` rewrites everything knowable only after an instant, adding
adversarial late facts (a retroactive split, restatements of old periods, price
corrections and a retroactive delisting), for look-ahead tests.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.lake import Lake
from pipelines.vendors import feeds
from pipelines.vendors.config import MarketConfig
from pipelines.vendors.market import Market, generate_market

VENDOR_PUBLISH = dt.time(18, 0)
SILVER_TABLES: tuple[str, ...] = (
    "security_master",
    "corporate_actions",
    "prices",
    "fundamentals",
    "sentiment",
)


def _publish(days: np.ndarray | pd.Series, at: dt.time = VENDOR_PUBLISH) -> pd.Series:
    """UTC publication instants of ``days`` at local time ``at`` (DST-aware)."""
    dates = pd.to_datetime(pd.Series(np.asarray(days)))
    local = (dates + pd.Timedelta(hours=at.hour, minutes=at.minute)).dt.tz_localize(
        "America/New_York"
    )
    return local.dt.tz_convert("UTC").astype("datetime64[us, UTC]")


def silver_frames(m: Market) -> dict[str, pd.DataFrame]:
    """The market as silver-table frames (lake columns plus ``valid_date`` and ``known_at``)."""
    tt, ii = np.nonzero(m.alive)
    days = np.array(m.sessions, dtype="datetime64[D]")
    prices = pd.DataFrame(
        {
            "security_id": m.security_ids[ii],
            "ticker": m.tickers[m.ticker_code[tt, ii]],
            "open": np.round(m.open[tt, ii], 4),
            "high": np.round(m.high[tt, ii], 4),
            "low": np.round(m.low[tt, ii], 4),
            "close": np.round(m.close[tt, ii], 4),
            "volume": m.volume[tt, ii].astype(np.float64),
            "currency": "USD",
            "valid_date": days[tt],
        }
    )
    prices["known_at"] = _publish(days)[tt].to_numpy()

    ca = m.corporate_actions
    is_split = (ca["action_type"] == "SPLIT").to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = ca["split_to"].to_numpy(np.float64) / ca["split_from"].to_numpy(np.float64)
    actions = pd.DataFrame(
        {
            "security_id": ca["security_id"].to_numpy(),
            "action_type": np.where(is_split, "split", "dividend"),
            "action_id": ca["action_id"].to_numpy(),
            "ratio": np.where(is_split, ratio, np.nan),
            "amount": np.where(is_split, np.nan, ca["dividend_amount"].to_numpy(np.float64)),
            "currency": ca["currency"].to_numpy(),
            "announce_date": ca["announce_date"].to_numpy().astype("datetime64[D]"),
            "valid_date": ca["ex_date"].to_numpy().astype("datetime64[D]"),
        }
    )
    actions["known_at"] = _publish(ca["announce_date"]).to_numpy()

    ev = feeds.master_records(m, VENDOR_PUBLISH)
    master = pd.DataFrame(
        {
            "security_id": ev["security_id"].to_numpy(),
            "ticker": ev["ticker"].to_numpy(),
            "name": ev["name"].to_numpy(),
            "sector": ev["sector"].to_numpy(),
            "exchange": ev["exchange"].to_numpy(),
            "currency": ev["currency"].to_numpy(),
            "listed": (ev["status"] == "ACTIVE").to_numpy(),
            "list_date": ev["listing_date"].to_numpy().astype("datetime64[D]"),
            "delist_date": ev["delisting_date"].to_numpy().astype("datetime64[D]"),
            "delist_reason": ev["delisting_reason"].where(ev["delisting_reason"] != "").to_numpy(),
            "valid_date": ev["effective_date"].to_numpy().astype("datetime64[D]"),
            "known_at": ev["published_at"].astype("datetime64[us, UTC]").to_numpy(),
        }
    )

    f = m.fundamentals
    fundamentals = pd.DataFrame(
        {
            "security_id": f["security_id"].to_numpy(),
            "fiscal_period": [
                f"{y}Q{q}" for y, q in zip(f["fiscal_year"], f["fiscal_quarter"], strict=True)
            ],
            "revenue": f["revenue"].to_numpy(np.float64),
            "net_income": f["net_income"].to_numpy(np.float64),
            "book_equity": f["book_equity"].to_numpy(np.float64),
            "total_assets": f["total_assets"].to_numpy(np.float64),
            "operating_cash_flow": f["operating_cash_flow"].to_numpy(np.float64),
            "shares_outstanding": f["shares_outstanding"].to_numpy(np.float64),
            "valid_date": f["fiscal_period_end"].to_numpy().astype("datetime64[D]"),
            "known_at": f["published_at"].astype("datetime64[us, UTC]").to_numpy(),
        }
    )

    s = feeds.sentiment_frame(m)
    sentiment = pd.DataFrame(
        {
            "security_id": s["security_id"].to_numpy(),
            "sentiment": s["sentiment_score"].to_numpy(np.float64),
            "article_count": s["news_count"].to_numpy(np.int64),
            "valid_date": s["date"].to_numpy().astype("datetime64[D]"),
            "known_at": s["published_at"].astype("datetime64[us, UTC]").to_numpy(),
        }
    )
    return {
        "security_master": master,
        "corporate_actions": actions,
        "prices": prices,
        "fundamentals": fundamentals,
        "sentiment": sentiment,
    }


def write_silver(lake: Lake, frames: Mapping[str, pd.DataFrame]) -> dict[str, int]:
    """Write each frame to its silver table in one idempotent commit; table → Delta version."""
    versions: dict[str, int] = {}
    for name in SILVER_TABLES:
        if name in frames:
            versions[name] = int(lake.write(name, frames[name]).version or 0)
    return versions


def perturb_after(
    frames: Mapping[str, pd.DataFrame], instant: dt.datetime, seed: int = 0
) -> dict[str, pd.DataFrame]:
    """A copy where every row known after ``instant`` is scrambled, plus adversarial late rows.

    Rows with ``known_at <= instant`` are untouched. Later rows get new values (prices,
    sentiment, fundamentals, action ratios/amounts, sectors). Added, all known after
    ``instant``: a 4:1 split and price corrections with ex/trade dates *before* ``instant``,
    restatements of every period already reported, and a delisting effective before
    ``instant`` — none may change anything computed as of a time ``<= instant``.
    """
    rng = np.random.default_rng(seed)
    cut = pd.Timestamp(instant)
    late_known = cut + pd.Timedelta(hours=1)
    out: dict[str, pd.DataFrame] = {}
    for name, frame in frames.items():
        df = frame.copy()
        late = (df["known_at"] > cut).to_numpy()
        n = int(late.sum())
        for col in df.columns:
            if col in ("security_id", "valid_date", "known_at", "fiscal_period", "action_type"):
                continue
            if df[col].dtype.kind == "f":
                vals = df[col].to_numpy(copy=True)
                vals[late] = np.abs(vals[late]) * rng.uniform(0.5, 1.5, n) + 0.01
                df[col] = vals
            elif col == "sector":
                df.loc[late, col] = "Utilities"
        out[name] = df

    early_day = (cut - pd.Timedelta(days=40)).normalize().tz_localize(None)
    known = frames["prices"]["known_at"] <= cut
    past = frames["prices"][known & (frames["prices"]["valid_date"] <= early_day)]
    victims = past["security_id"].drop_duplicates().iloc[:5].to_numpy()
    # price corrections of already-known days, published after the instant
    corr = past[past["valid_date"] >= past["valid_date"].max() - pd.Timedelta(days=10)].copy()
    corr["close"] = corr["close"] * 1.37
    corr["known_at"] = late_known
    out["prices"] = pd.concat([out["prices"], corr], ignore_index=True)
    # a retroactive split announced after the instant
    split = pd.DataFrame(
        {
            "security_id": victims[:2],
            "action_type": "split",
            "action_id": ["LATE-SPLIT-1", "LATE-SPLIT-2"],
            "ratio": 4.0,
            "amount": np.nan,
            "currency": "USD",
            "announce_date": (cut + pd.Timedelta(days=1)).tz_localize(None).normalize(),
            "valid_date": early_day,
            "known_at": late_known,
        }
    )
    out["corporate_actions"] = pd.concat([out["corporate_actions"], split], ignore_index=True)
    # restatements of every period known by the instant
    fund = frames["fundamentals"]
    restated = fund[fund["known_at"] <= cut].copy()
    for col in ("net_income", "book_equity", "revenue"):
        restated[col] = restated[col] * rng.uniform(0.5, 1.5, len(restated))
    restated["known_at"] = late_known
    out["fundamentals"] = pd.concat([out["fundamentals"], restated], ignore_index=True)
    # a retroactive delisting
    master = frames["security_master"]
    last = master[master["security_id"].isin(victims[2:4])].drop_duplicates(
        "security_id", keep="last"
    )
    delist = last.assign(listed=False, valid_date=early_day, known_at=late_known)
    out["security_master"] = pd.concat([out["security_master"], delist], ignore_index=True)
    return out


def simulated_market(
    universe: int, start: dt.date, end: dt.date, signal: float = 0.05, seed: int = 11
) -> Market:
    """The vendor simulator's market for these parameters (cached: generation is slow)."""
    return _market(universe, start, end, signal, seed)


def market_frames(
    universe: int, start: dt.date, end: dt.date, signal: float = 0.05, seed: int = 11
) -> dict[str, pd.DataFrame]:
    """:func:`silver_frames` of :func:`simulated_market` (cached and shared: do not mutate)."""
    return _frames(universe, start, end, signal, seed)


# Positional-only cache keys: keyword and positional calls share one entry.
@lru_cache(maxsize=4)
def _market(universe: int, start: dt.date, end: dt.date, signal: float, seed: int) -> Market:
    config = MarketConfig(
        seed=seed, universe_size=universe, start=start, end=end, signal_strength=signal
    )
    return generate_market(config)


@lru_cache(maxsize=4)
def _frames(
    universe: int, start: dt.date, end: dt.date, signal: float, seed: int
) -> dict[str, pd.DataFrame]:
    return silver_frames(_market(universe, start, end, signal, seed))


def simulated_lake(
    path: str | Path,
    *,
    universe: int,
    start: dt.date,
    end: dt.date,
    signal: float = 0.05,
    seed: int = 11,
    perturb: Callable[[dict[str, pd.DataFrame]], Mapping[str, pd.DataFrame]] | None = None,
    storage_options: Mapping[str, str] | None = None,
    omit: Collection[str] = (),
) -> Lake:
    """A lake at ``path`` (a folder, or ``s3://…`` with ``storage_options``) holding the simulated market's silver tables.

    The market has ``universe`` securities over the sessions ``start``..``end``, a planted
    signal of strength ``signal`` and seed ``seed`` (see :class:`MarketConfig`). ``perturb``
    rewrites the silver frames before they are written (e.g. :func:`perturb_after` for
    look-ahead tests); it gets the cached frames and must return new ones. ``omit`` names
    silver tables left unwritten, e.g. ``("fundamentals", "sentiment")`` for a vendor that
    delivers only prices, the security master and corporate actions.
    """
    unknown = set(omit) - set(SILVER_TABLES)
    if unknown:
        raise ValueError(f"omit: not silver tables: {sorted(unknown)}")
    frames: Mapping[str, pd.DataFrame] = market_frames(universe, start, end, signal, seed)
    if perturb is not None:
        frames = perturb(dict(frames))
    frames = {name: frame for name, frame in frames.items() if name not in omit}
    lake = Lake(str(path), dict(storage_options or {}))
    write_silver(lake, frames)
    return lake


__all__ = [
    "SILVER_TABLES",
    "market_frames",
    "perturb_after",
    "silver_frames",
    "simulated_lake",
    "simulated_market",
    "write_silver",
]
