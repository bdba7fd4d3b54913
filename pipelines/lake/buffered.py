"""A :class:`~pipelines.lake.interface.Store` that keeps writes in memory until :meth:`flush`.

The backtest runs the daily stages session after session; against the :class:`Lake` every
stage write is a Delta commit and every read a scan of a table that grows by a few small
files per session. :class:`BufferedStore` sits in front of a lake:

* ``write`` checks the frame exactly as :meth:`Lake.write` does (``conform``: a bad frame
  fails at once), gives it its system columns (``_batch_id``, ``_ingested_at``...) and
  keeps it in memory as an Arrow table. The batch id is the lake's (given, or the content
  hash), and a batch already buffered or already committed is a no-op, as in the lake.
* ``as_of`` resolves the lake's candidate rows together with the buffered ones through
  :func:`pipelines.lake.bitemporal.resolve_as_of` — the one as-of implementation — so a
  read answers exactly what the lake would answer had every buffered batch been committed.
* ``flush`` commits each table's buffered batches as one Delta commit recording every
  batch id (:meth:`Lake.commit_prepared`); the rows keep the ingestion times they got when
  buffered, so reads resolve the same before and after.
* ``cached_tables`` (e.g. ``prices``, ``security_master``: tables the run only reads) are
  scanned from the lake once and then filtered in memory.

The buffer reads the lake's tables without looking for new commits (the log is read when
a table is first opened and after each flush), so it assumes it is the only writer of the tables it writes between two flushes (a
backtest writes only its own portfolio's rows); what it has not flushed is lost with the
process, so its owner flushes every few sessions and checkpoints after each flush.
"""

from __future__ import annotations

import datetime as dt
import pickle
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from pipelines.lake import bitemporal
from pipelines.lake.catalog import get_table
from pipelines.lake.conform import FrameLike, conform
from pipelines.lake.spec import TableSpec, ValidTime
from pipelines.lake.store import Lake, WriteResult, content_hash, with_system_columns


class BufferedStore:
    """Writes held in memory over a :class:`Lake`, reads resolved over both (module doc)."""

    def __init__(self, lake: Lake, *, cached_tables: Iterable[str] = ()) -> None:
        self.lake = lake
        self.cached_tables = frozenset(cached_tables)
        self._pending: dict[str, list[pa.Table]] = {}
        self._pending_ids: dict[str, dict[str, None]] = {}  # ordered set per table
        self._committed: dict[str, set[str]] = {}
        self._scans: dict[str, pa.Table] = {}
        self._scan_days: dict[str, np.ndarray] = {}
        self._answers: dict[str, dict[tuple[object, ...], pa.Table]] = {}
        self._lake_parts: dict[tuple[str, tuple[object, ...]], pa.Table] = {}

    def __repr__(self) -> str:
        return f"BufferedStore({self.lake!r}, {self.pending_rows()} rows pending)"

    # ---- writes ---------------------------------------------------------------------------

    def write(
        self,
        name: str,
        data: FrameLike,
        *,
        known_at: dt.datetime | None = None,
        valid_date: dt.date | None = None,
        batch_id: str | None = None,
    ) -> WriteResult:
        """Buffer ``data`` for table ``name`` as one batch (same checks and batch id as
        :meth:`Lake.write`; a batch already buffered or committed writes nothing)."""
        spec = get_table(name)
        tbl = conform(spec, data, known_at=known_at, valid_date=valid_date)
        bid = batch_id or f"{name}:{content_hash(tbl)}"
        if self.has_batch(name, bid):
            return WriteResult(name, bid, tbl.num_rows, False, None)
        ids = pa.chunked_array([pa.repeat(pa.scalar(bid), tbl.num_rows)], pa.string())
        self._pending.setdefault(name, []).append(with_system_columns(spec, tbl, ids, False))
        self._pending_ids.setdefault(name, {})[bid] = None
        self._answers.pop(name, None)
        return WriteResult(name, bid, tbl.num_rows, True, None)

    def has_batch(self, name: str, batch_id: str) -> bool:
        """Whether ``batch_id`` is buffered or committed for table ``name``."""
        if batch_id in self._pending_ids.get(name, ()):
            return True
        committed = self._committed.setdefault(name, set())
        if batch_id in committed:
            return True
        if self.lake.has_batch(name, batch_id, refresh=False):
            committed.add(batch_id)
            return True
        return False

    def pending_rows(self) -> int:
        """Rows buffered and not yet committed."""
        return sum(t.num_rows for tables in self._pending.values() for t in tables)

    def flush(self) -> dict[str, int]:
        """Commit every buffered batch: one Delta commit per table (in first-write order),
        recording each batch id. Returns the rows committed per table."""
        out: dict[str, int] = {}
        for name in list(self._pending):
            ids = list(self._pending_ids[name])
            rows = pa.concat_tables(self._pending[name])
            self.lake.commit_prepared(name, rows, ids)
            self._committed.setdefault(name, set()).update(ids)
            # Committed: from now on the lake answers for these rows.
            del self._pending[name], self._pending_ids[name]
            self._scans.pop(name, None)
            out[name] = rows.num_rows
        # A committed batch answers as it did buffered; the reads of these sessions will
        # not be asked again (the knowledge time moves on), so keep memory bounded.
        self._answers.clear()
        self._lake_parts.clear()
        return out

    # ---- reads ----------------------------------------------------------------------------

    def as_of(
        self,
        name: str,
        *,
        known_at: dt.datetime,
        valid_at: dt.date | bitemporal.ValidRange | tuple[dt.date, dt.date],
        columns: list[str] | None = None,
        filter: ds.Expression | None = None,
    ) -> pa.Table:
        """What :meth:`Lake.as_of` would answer with every buffered batch committed.

        The same read asked twice with no write to the table in between gets the same
        (immutable) table back without resolving it again.
        """
        rng = bitemporal.as_valid_range(valid_at)
        key = (
            bitemporal.utc(known_at),
            rng,
            None if columns is None else tuple(columns),
            # The serialized expression: its str() abbreviates long value sets.
            None if filter is None else pickle.dumps(filter),
        )
        answers = self._answers.setdefault(name, {})
        answer = answers.get(key)
        if answer is None:
            answer = answers[key] = self._resolve(name, key, known_at, rng, columns, filter)
        return answer

    def _resolve(
        self,
        name: str,
        key: tuple[object, ...],
        known_at: dt.datetime,
        rng: bitemporal.ValidRange,
        columns: list[str] | None,
        filter: ds.Expression | None,
    ) -> pa.Table:
        spec = get_table(name)
        pending = self._pending.get(name)
        # The lake's part of a read changes only with a flush: a read asked again after a
        # write to the table (read, append, read) scans the lake once.
        data = self._lake_parts.get((name, key))
        if data is None and name in self.cached_tables:
            expr = _row_filter(spec, known_at, rng, filter)
            data = self._window(name, spec, rng).filter(expr)
            scan = bitemporal.scan_columns(spec, columns)
            if scan is not None:
                data = data.select(scan)
        elif data is None:
            data = self.lake.candidates(name, known_at, rng, columns, filter, refresh=False)
        self._lake_parts[(name, key)] = data
        if pending:
            if len(pending) > 1:
                # One chunk: filtering a table costs per chunk (~45 µs each), and a table
                # written every session would hold hundreds of batches by the next flush.
                pending[:] = [pa.concat_tables(pending).combine_chunks()]
            extra = pending[0].filter(_row_filter(spec, known_at, rng, filter))
            extra = extra.select(data.schema.names).cast(data.schema)
            data = pa.concat_tables([data, extra])
        return bitemporal.resolve_as_of(spec, data, rng)

    def _scan(self, name: str) -> pa.Table:
        """The lake's rows of a cached table, scanned once (again after a flush to it), in
        valid-date order (the as-of answer orders its rows itself: see ``as_of_point.sql``)."""
        scan = self._scans.get(name)
        if scan is None:
            scan = self.lake.dataset(name, refresh=False).to_table()
            scan = self._scans[name] = scan.take(
                pc.sort_indices(scan, [("valid_date", "ascending")])
            ).combine_chunks()
            self._scan_days[name] = (
                scan.column("valid_date").to_numpy(zero_copy_only=False).astype("datetime64[D]")
            )
        return scan

    def _window(self, name: str, spec: TableSpec, rng: bitemporal.ValidRange) -> pa.Table:
        """The cached rows a read of ``rng`` may use: for a point-in-time table only those
        dated in the range (a slice of the sorted scan, not a filter over every row of a
        table that holds years of history); the exact row filter is applied after."""
        scan = self._scan(name)
        if spec.valid_time is not ValidTime.POINT:
            return scan
        days = self._scan_days[name]
        lo = int(np.searchsorted(days, np.datetime64(rng.start, "D"), side="left"))
        hi = int(np.searchsorted(days, np.datetime64(rng.end, "D"), side="right"))
        return scan.slice(lo, hi - lo)


def _row_filter(
    spec: TableSpec,
    known_at: dt.datetime,
    rng: bitemporal.ValidRange,
    filter: ds.Expression | None,
) -> ds.Expression:
    """The exact row filter of an as-of read (what the lake applies after pruning files)."""
    expr, _ = bitemporal.candidate_filter(spec, known_at, rng)
    return expr if filter is None else expr & filter


__all__ = ["BufferedStore"]
