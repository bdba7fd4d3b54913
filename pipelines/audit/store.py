"""A lake as it was known at one instant, whose writes never leave memory.

The leak audit re-runs the research stages of a past session exactly as the daily loop
runs them (same functions, same :class:`~pipelines.research.stages.ResearchContext`), but
over :class:`AuditLake` instead of the lake:

* every read is capped at ``cap`` (the session's decision cutoff): point-in-time reads ask
  for ``min(known_at, cap)``, and the raw datasets the point-in-time panel's DuckDB query
  scans (:meth:`Lake.dataset`) hold only rows with ``known_at <= cap`` — so a fact stamped
  later (a correction, a late print) is invisible whatever the stage asks for;
* every write goes to a :class:`~pipelines.lake.buffered.BufferedStore` that is never
  flushed (a stage that reads back what it wrote sees it), and is dropped with the object;
* anything that would commit to the real lake raises :class:`AuditWriteError`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable

from pipelines.errors import AlphaFactoryError
from pipelines.lake import bitemporal
from pipelines.lake.buffered import BufferedStore
from pipelines.lake.conform import FrameLike
from pipelines.lake.store import Lake, WriteResult


class AuditWriteError(AlphaFactoryError, RuntimeError):
    """Something tried to commit to the real lake through an audit view."""


class _CappedReader(Lake):
    """The lake's tables with only the rows known at ``cap``; commits refused."""

    def __init__(self, lake: Lake, cap: dt.datetime | None) -> None:
        super().__init__(
            lake.location.root,
            lake.location.storage_options,
            checkpoint_interval=lake.checkpoint_interval,
            retention_hours=lake.retention_hours,
        )
        self.cap = None if cap is None else bitemporal.utc(cap)

    def table(self, name: str, *, create: bool = False, refresh: bool = True) -> DeltaTable | None:
        # never create a table in the real lake from an audit
        return super().table(name, create=False, refresh=refresh)

    def dataset(
        self, name: str, *, prune: list[Any] | str | None = None, refresh: bool = True
    ) -> ds.Dataset:
        data = super().dataset(name, prune=prune, refresh=refresh)
        if self.cap is None:
            return data
        when = pa.scalar(self.cap, pa.timestamp("us", tz="UTC"))
        return data.filter(pc.field("known_at") <= when)

    def commit_prepared(self, name: str, full: pa.Table, batch_ids: list[str]) -> WriteResult:
        raise AuditWriteError(f"the leak audit never writes to the lake (table {name})")

    def write(
        self,
        name: str,
        data: FrameLike,
        *,
        known_at: dt.datetime | None = None,
        valid_date: dt.date | None = None,
        batch_id: str | None = None,
        row_batch_ids: pa.Array | pa.ChunkedArray | None = None,
        empty_batch_ids: list[str] | None = None,
        deleted: bool = False,
    ) -> WriteResult:
        raise AuditWriteError(f"the leak audit never writes to the lake (table {name})")


class AuditLake(Lake):
    """The lake as known at ``cap`` (None: everything), with in-memory writes (module doc)."""

    def __init__(self, lake: Lake, cap: dt.datetime | None) -> None:
        super().__init__(
            lake.location.root,
            lake.location.storage_options,
            checkpoint_interval=lake.checkpoint_interval,
            retention_hours=lake.retention_hours,
        )
        self.reader = _CappedReader(lake, cap)
        self.buffer = BufferedStore(self.reader)

    @property
    def cap(self) -> dt.datetime | None:
        return self.reader.cap

    def __repr__(self) -> str:
        return f"AuditLake({self.location.root!r}, cap={self.cap})"

    def _known(self, known_at: dt.datetime) -> dt.datetime:
        return known_at if self.cap is None else min(bitemporal.utc(known_at), self.cap)

    # ---- reads: capped -------------------------------------------------------------------

    def table(self, name: str, *, create: bool = False, refresh: bool = True) -> DeltaTable | None:
        return self.reader.table(name, refresh=refresh)

    def dataset(
        self, name: str, *, prune: list[Any] | str | None = None, refresh: bool = True
    ) -> ds.Dataset:
        return self.reader.dataset(name, prune=prune, refresh=refresh)

    def candidates(
        self,
        name: str,
        known_at: dt.datetime,
        rng: bitemporal.ValidRange,
        columns: list[str] | None = None,
        filter: ds.Expression | None = None,
        *,
        refresh: bool = True,
    ) -> pa.Table:
        return self.reader.candidates(
            name, self._known(known_at), rng, columns, filter, refresh=refresh
        )

    def as_of(
        self,
        name: str,
        *,
        known_at: dt.datetime,
        valid_at: dt.date | bitemporal.ValidRange | tuple[dt.date, dt.date],
        columns: list[str] | None = None,
        filter: ds.Expression | None = None,
    ) -> pa.Table:
        return self.buffer.as_of(
            name, known_at=self._known(known_at), valid_at=valid_at, columns=columns, filter=filter
        )

    # ---- writes: in memory only ----------------------------------------------------------

    def write(
        self,
        name: str,
        data: FrameLike,
        *,
        known_at: dt.datetime | None = None,
        valid_date: dt.date | None = None,
        batch_id: str | None = None,
        row_batch_ids: pa.Array | pa.ChunkedArray | None = None,
        empty_batch_ids: list[str] | None = None,
        deleted: bool = False,
    ) -> WriteResult:
        if row_batch_ids is not None or empty_batch_ids or deleted:
            # ingestion's multi-batch and retraction writes: no research stage makes them
            raise AuditWriteError(f"the leak audit buffers plain batches only (table {name})")
        return self.buffer.write(
            name, data, known_at=known_at, valid_date=valid_date, batch_id=batch_id
        )

    def has_batch(self, name: str, batch_id: str, *, refresh: bool = True) -> bool:
        return self.buffer.has_batch(name, batch_id)

    def commit_prepared(self, name: str, full: pa.Table, batch_ids: list[str]) -> WriteResult:
        raise AuditWriteError(f"the leak audit never writes to the lake (table {name})")

    def land_raw(self, *args: Any, **kwargs: Any) -> Any:
        raise AuditWriteError("the leak audit never lands raw files")

    def land_raw_many(self, *args: Any, **kwargs: Any) -> Any:
        raise AuditWriteError("the leak audit never lands raw files")

    def pending_rows(self) -> int:
        """Rows the audited stages wrote (kept in memory, never committed)."""
        return self.buffer.pending_rows()


__all__ = ["AuditLake", "AuditWriteError"]
