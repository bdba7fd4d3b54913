"""In-process vendor: the daily folders, REST datasets and ground truth, no servers needed.

:class:`VendorSimulator` is what the SFTP and REST servers wrap, and what backtests and
benchmarks use directly. The market is generated lazily on first use (once), day folders are
rendered on demand and cached (in memory, and on disk when ``cache_dir`` is given).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from dataclasses import asdict
from datetime import date, datetime, time
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.errors import AlphaFactoryError
from pipelines.timeline import trading_calendar
from pipelines.vendors import feeds
from pipelines.vendors.config import MarketConfig, VendorConfig
from pipelines.vendors.faults import (
    Fault,
    FaultEffect,
    FaultPlan,
    apply_price_row_faults,
    choose_rows,
)
from pipelines.vendors.files import MANIFEST, DayFolder, csv_bytes, gzip_bytes, manifest_bytes
from pipelines.vendors.instants import instant_ns, publish_instant
from pipelines.vendors.market import Market, SignalTruth, generate_market

PRICES = "prices.csv.gz"
CORPORATE_ACTIONS = "corporate_actions.csv.gz"
SECURITY_MASTER = "security_master.csv.gz"


class MissingDayError(AlphaFactoryError, LookupError):
    """The vendor never publishes this day (``missing`` fault)."""


class NotSimulatedError(AlphaFactoryError, LookupError):
    """The date is not a trading session inside the simulated range."""


def correction_file_name(day: date) -> str:
    """Name of the file, in the next session's folder, that corrects ``day``'s prices."""
    return f"prices_correction_{day.isoformat()}.csv.gz"


class VendorSimulator:
    """Deterministic vendor over one :class:`MarketConfig` and one :class:`FaultPlan`."""

    def __init__(
        self,
        market: MarketConfig | None = None,
        *,
        faults: FaultPlan | None = None,
        publish_time: time = time(18, 0),
        cache_dir: Path | None = None,
        memory_cache_days: int = 32,
    ) -> None:
        self.config = market or MarketConfig()
        self.faults = faults or FaultPlan()
        self.publish_time = publish_time
        self._cache_dir = cache_dir
        self._memory_cache_days = memory_cache_days
        self._lru: OrderedDict[date, DayFolder] = OrderedDict()
        self._lock = threading.RLock()
        self._market: Market | None = None
        self.sessions: list[date] = trading_calendar(self.config.calendar).sessions(
            self.config.start, self.config.end
        )
        self._session_index = {d: i for i, d in enumerate(self.sessions)}
        stray = [
            d
            for d in self.faults.days
            if self.config.start <= d <= self.config.end and d not in self._session_index
        ]
        if stray:  # a fault on a holiday would silently never fire
            raise ValueError(f"fault plan has non-session dates: {sorted(stray)}")
        # Publish instants (with late faults; missing days = never) for fast visibility checks.
        pub = [self.publish_at(d) for d in self.sessions]
        self._publish_ns = np.array([instant_ns(p) for p in pub], dtype=np.int64)

    @classmethod
    def from_vendor_config(cls, cfg: VendorConfig) -> VendorSimulator:
        """A simulator serving ``cfg.market`` with ``cfg``'s faults, publish time and cache."""
        return cls(
            cfg.market,
            faults=cfg.faults,
            publish_time=cfg.publish_time,
            cache_dir=Path(cfg.state_dir) / "cache",
        )

    # --- ground truth -------------------------------------------------------------------

    @property
    def market(self) -> Market:
        """The generated market (generated on first access; thread-safe)."""
        with self._lock:
            if self._market is None:
                self._market = generate_market(self.config)
            return self._market

    @property
    def signal(self) -> SignalTruth:
        """The planted signal's true parameters."""
        return SignalTruth(self.config.signal_strength, self.config.signal_horizon)

    # --- publication schedule -----------------------------------------------------------

    def _index(self, day: date) -> int:
        try:
            return self._session_index[day]
        except KeyError:
            raise NotSimulatedError(f"{day} is not a simulated trading session") from None

    def scheduled_publish(self, day: date) -> datetime:
        """When ``day``'s folder is normally published (UTC)."""
        return publish_instant(day, self.publish_time)

    def publish_at(self, day: date) -> datetime | None:
        """When ``day``'s folder actually appears (late faults applied); None if never."""
        self._index(day)
        if self.faults.get(day, Fault.MISSING) is not None:
            return None
        ts = self.scheduled_publish(day)
        if (late := self.faults.get(day, Fault.LATE)) is not None:
            ts = ts + pd.Timedelta(hours=late.hours).to_pytimedelta()
        return ts

    def is_published(self, day: date, now: datetime) -> bool:
        """Whether ``day``'s folder is visible at ``now``."""
        i = self._session_index.get(day)
        return i is not None and self._publish_ns[i] <= instant_ns(now)

    def visible_days(self, now: datetime) -> list[date]:
        """All sessions whose folder is visible at ``now``, ascending."""
        mask = self._publish_ns <= instant_ns(now)
        return [d for d, ok in zip(self.sessions, mask, strict=True) if ok]

    # --- daily folders -------------------------------------------------------------------

    @cached_property
    def _cache_key(self) -> str:
        payload = json.dumps(
            {
                "market": asdict(self.config),
                "faults": self.faults.to_dict(),
                "publish_time": self.publish_time.isoformat(),
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:20]

    def day_folder(self, day: date) -> DayFolder:
        """The rendered folder for ``day`` (regardless of the clock).

        Raises :class:`MissingDayError` for a ``missing`` day and :class:`NotSimulatedError`
        for dates that are not sessions.
        """
        published_at = self.publish_at(day)
        if published_at is None:
            raise MissingDayError(f"{day} is never published (missing-day fault)")
        with self._lock:
            if day in self._lru:
                self._lru.move_to_end(day)
                return self._lru[day]
        folder = self._load_cached(day, published_at)
        if folder is None:
            folder = self._render(day, published_at)
            self._store_cached(folder)
        with self._lock:
            self._lru[day] = folder
            while len(self._lru) > self._memory_cache_days:
                self._lru.popitem(last=False)
        return folder

    def day_files(self, day: date) -> dict[str, bytes]:
        """``{file name: bytes}`` of ``day``'s folder, ``manifest.json`` last."""
        return dict(self.day_folder(day).files)

    def fault_effects(self, day: date) -> tuple[FaultEffect, ...]:
        """Exactly which rows/files the faults scheduled on ``day`` touched."""
        published_at = self.publish_at(day)
        if published_at is None:
            return (FaultEffect(Fault.MISSING, "", detail="folder never published"),)
        return self._render(day, published_at).effects

    def clean_prices(self, day: date) -> pd.DataFrame:
        """``day``'s prices in vendor columns, without any fault applied."""
        return feeds.prices_frame(self.market, self._index(day))

    def _render(self, day: date, published_at: datetime) -> DayFolder:
        m = self.market
        t = self._index(day)
        seed = self.config.seed
        specs = self.faults.on(day)
        kinds = {s.kind: s for s in specs}
        clean = feeds.prices_frame(m, t)
        prices, effects = apply_price_row_faults(clean, seed, day, specs)
        if (spec := kinds.get(Fault.SCHEMA_RETYPE)) is not None:
            prices[spec.column] = [f"{v:.4f}USD" for v in prices[spec.column].to_numpy()]
            effects.append(
                FaultEffect(Fault.SCHEMA_RETYPE, PRICES, detail=f"{spec.column} as text")
            )
        if (spec := kinds.get(Fault.SCHEMA_RENAME)) is not None:
            prices = prices.rename(columns={spec.column: spec.new_name})
            effects.append(
                FaultEffect(Fault.SCHEMA_RENAME, PRICES, detail=f"{spec.column}->{spec.new_name}")
            )
        frames: dict[str, pd.DataFrame] = {
            PRICES: prices,
            CORPORATE_ACTIONS: self._slicers[CORPORATE_ACTIONS].day(t),
            SECURITY_MASTER: self._slicers[SECURITY_MASTER].day(t),
        }
        if t > 0 and (spec := self.faults.get(self.sessions[t - 1], Fault.CORRECTION)):
            prev = self.sessions[t - 1]
            prev_clean = feeds.prices_frame(m, t - 1)
            rows = choose_rows(seed, prev, Fault.CORRECTION, len(prev_clean), spec.rows)
            frames[correction_file_name(prev)] = prev_clean.iloc[rows]
        files = {name: gzip_bytes(csv_bytes(df)) for name, df in frames.items()}
        rows_count = {name: len(df) for name, df in frames.items()}
        sha_override: dict[str, str] = {}
        if (spec := kinds.get(Fault.TRUNCATED_GZIP)) is not None and spec.file in files:
            cut = max(1, int(len(files[spec.file]) * spec.fraction))
            files[spec.file] = files[spec.file][:cut]
            effects.append(FaultEffect(Fault.TRUNCATED_GZIP, spec.file, detail=f"cut to {cut} B"))
        if (spec := kinds.get(Fault.CHECKSUM_MISMATCH)) is not None and spec.file in files:
            sha_override[spec.file] = hashlib.sha256(b"stale:" + files[spec.file]).hexdigest()
            effects.append(FaultEffect(Fault.CHECKSUM_MISMATCH, spec.file, detail="wrong sha256"))
        if (spec := kinds.get(Fault.LATE)) is not None:
            effects.append(FaultEffect(Fault.LATE, "", detail=f"published {spec.hours}h late"))
        files[MANIFEST] = manifest_bytes(day, published_at, files, rows_count, sha_override)
        return DayFolder(day, published_at, files, tuple(effects))

    def _day_dir(self, day: date) -> Path | None:
        if self._cache_dir is None:
            return None
        return Path(self._cache_dir) / self._cache_key / "daily" / day.isoformat()

    def _load_cached(self, day: date, published_at: datetime) -> DayFolder | None:
        d = self._day_dir(day)
        if d is None or not (d / MANIFEST).is_file():
            return None
        manifest = (d / MANIFEST).read_bytes()
        names = [f["name"] for f in json.loads(manifest)["files"]]
        files = {n: (d / n).read_bytes() for n in names}
        files[MANIFEST] = manifest
        return DayFolder(day, published_at, files)

    def _store_cached(self, folder: DayFolder) -> None:
        d = self._day_dir(folder.day)
        if d is None:
            return
        d.mkdir(parents=True, exist_ok=True)
        # Manifest last, each file via rename: a half-written cache entry is never trusted.
        for name, data in folder.files.items():
            tmp = d / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, d / name)

    # --- REST datasets -------------------------------------------------------------------

    @cached_property
    def _slicers(self) -> dict[str, feeds.DaySlicer]:
        m = self.market
        return {
            CORPORATE_ACTIONS: feeds.DaySlicer(
                feeds.corporate_actions_vendor(m), m.corporate_actions["announce_idx"]
            ),
            SECURITY_MASTER: feeds.DaySlicer(
                feeds.security_master_vendor(m), m.master_events["effective_idx"]
            ),
        }

    @cached_property
    def rest_sources(self) -> dict[str, feeds.PublishedDataset]:
        """The datasets the REST API serves, keyed by URL name."""
        m = self.market
        return {
            "fundamentals": feeds.FrameSource(m.fundamentals, feeds.fundamentals_json),
            "sentiment": feeds.SentimentSource(m),
            "security-master": feeds.FrameSource(
                feeds.master_records(m, self.publish_time), feeds.master_json
            ),
        }

    def fundamentals(
        self, since: datetime | None = None, until_clock: datetime | None = None
    ) -> pd.DataFrame:
        """Fundamentals records with ``since < published_at <= until_clock``."""
        return _window(self.market.fundamentals, since, until_clock)

    def security_master(
        self, since: datetime | None = None, until_clock: datetime | None = None
    ) -> pd.DataFrame:
        """Security-master change records with ``since < published_at <= until_clock``."""
        return _window(feeds.master_records(self.market, self.publish_time), since, until_clock)

    def sentiment(
        self,
        start: date | None = None,
        end: date | None = None,
        until_clock: datetime | None = None,
    ) -> pd.DataFrame:
        """Daily sentiment for sessions in ``[start, end]``, published by ``until_clock``."""
        return _window(feeds.sentiment_frame(self.market, start, end), None, until_clock)

    def prices(self, start: date | None = None, end: date | None = None) -> pd.DataFrame:
        """Clean daily prices (vendor columns) for sessions in ``[start, end]``."""
        days = [
            d for d in self.sessions if (start is None or d >= start) and (end is None or d <= end)
        ]
        frames = [feeds.prices_frame(self.market, self._session_index[d]) for d in days]
        return (
            pd.concat(frames, ignore_index=True)
            if frames
            else feeds.prices_frame(self.market, 0)[:0]
        )


def _window(df: pd.DataFrame, since: datetime | None, until: datetime | None) -> pd.DataFrame:
    pub = df["published_at"]
    mask = np.ones(len(df), dtype=bool)
    if since is not None:
        mask &= (pub > pd.Timestamp(since)).to_numpy()
    if until is not None:
        mask &= (pub <= pd.Timestamp(until)).to_numpy()
    return df[mask].reset_index(drop=True)
