"""The vendor simulator as in-process sources (no sockets): for fast unit tests and
in-process backtests. Same bytes and records as the SFTP and REST servers serve."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pipelines.vendors.clock import Clock
from pipelines.vendors.instants import instant_ns
from pipelines.vendors.simulator import VendorSimulator


@dataclass
class _Session:
    sim: VendorSimulator
    clock: Clock

    def _day(self, path: str) -> dt.date | None:
        parts = [p for p in path.split("/") if p]
        if len(parts) < 2 or parts[0] != "daily":
            return None
        try:
            day = dt.date.fromisoformat(parts[1])
        except ValueError:
            return None
        return day if self.sim.is_published(day, self.clock.now()) else None

    def list_dir(self, path: str) -> list[str] | None:
        day = self._day(path)
        return None if day is None else sorted(self.sim.day_files(day))

    def read(self, path: str) -> bytes:
        day = self._day(path)
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if day is None or name not in (files := self.sim.day_files(day)):
            raise FileNotFoundError(path)
        return files[name]

    def mtime(self, path: str) -> dt.datetime:
        """What the SFTP server reports: the publish instant (the manifest: one second later)."""
        self.read(path)  # FileNotFoundError for an unpublished or unknown file
        day = self._day(path)
        assert day is not None
        name = path.rstrip("/").rsplit("/", 1)[-1]
        return dt.datetime.fromtimestamp(self.sim.day_folder(day).mtime(name), dt.UTC)


@dataclass
class SimulatorFileSource:
    """The simulator's SFTP tree, read in-process as of ``clock``."""

    sim: VendorSimulator
    clock: Clock

    @contextmanager
    def session(self) -> Iterator[_Session]:
        yield _Session(self.sim, self.clock)


@dataclass
class SimulatorRecordSource:
    """The simulator's REST datasets, read in-process as of ``clock``."""

    sim: VendorSimulator
    clock: Clock

    def fetch(
        self, endpoint: str, since: dt.datetime | None, until: dt.datetime, page_size: int
    ) -> list[dict[str, Any]]:
        until = min(until, self.clock.now())
        source = self.sim.rest_sources[endpoint.rstrip("/").rsplit("/", 1)[-1]]
        lo = source.count_published_until(instant_ns(since)) if since is not None else 0
        hi = source.count_published_until(instant_ns(until))
        return source.records(lo, hi) if hi > lo else []
