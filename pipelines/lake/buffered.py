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
  Buffered rows are indexed by valid date (a read of a day touches that day's rows), and
  the lake is not scanned for a read no file of the table can answer by its log's
  min/max statistics (the days written since the last flush).
* A write's batch id is looked up in the lake's log only when a file of the table may
  hold the batch's rows' day: a committed batch's rows are all in the table.
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

import bisect
import contextlib
import datetime as dt
import itertools
import pickle
import re
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from pipelines.lake import bitemporal
from pipelines.lake.catalog import get_table
from pipelines.lake.conform import FrameLike, conform
from pipelines.lake.spec import PARTITION_COLUMN, TableSpec, ValidTime
from pipelines.lake.store import (
    FileBounds,
    Lake,
    WriteResult,
    content_hash,
    day_number,
    with_system_columns,
)

_TS = pa.timestamp("us", tz="UTC")
#: Reads of a point-in-time table over at most this span are answered from a window of
#: the lake's rows scanned once (:meth:`BufferedStore._tail_rows`), which reaches this far
#: beyond the read that scanned it on either side.
_TAIL_SPAN = dt.timedelta(days=62)
_TAIL_MARGIN = dt.timedelta(days=45)


class _Pending:
    """One table's buffered batches: in write order (what a flush commits, as one commit)
    and by valid date, so a read of a day or a range touches only the rows dated in it
    instead of filtering every row buffered since the last flush."""

    def __init__(self) -> None:
        self.ids: dict[str, None] = {}  # ordered set
        self.batches: list[pa.Table] = []
        self.rows = 0
        self._by_day: dict[int, list[pa.Table]] = {}
        self._days: list[int] = []  # the keys of _by_day, sorted
        #: Per day: its rows' slices in write order (``_by_day`` merges them) and the
        #: keys of the first ``n`` of them (:meth:`day_keys`; the table's key, the same
        #: for every call), or None once one of them could not give its keys as strings.
        self._day_log: dict[int, list[pa.Table]] = {}
        self._day_keys: dict[int, tuple[int, set[tuple[str, ...]] | None]] = {}

    def add(self, batch_id: str, rows: pa.Table) -> None:
        """Buffer ``rows`` (sorted by valid date, as :func:`with_system_columns` leaves them)."""
        self.ids[batch_id] = None
        self.batches.append(rows)
        self.rows += rows.num_rows
        if not rows.num_rows:
            return
        days = pc.cast(rows.column("valid_date"), pa.int32()).to_numpy()
        cuts = [0, *(np.flatnonzero(days[1:] != days[:-1]) + 1).tolist(), len(days)]
        for lo, hi in itertools.pairwise(cuts):
            day = int(days[lo])
            parts = self._by_day.get(day)
            if parts is None:
                parts = self._by_day[day] = []
                self._day_log[day] = []
                bisect.insort(self._days, day)
            part = rows.slice(lo, hi - lo)
            parts.append(part)
            self._day_log[day].append(part)

    def day_keys(self, day: dt.date, key: tuple[str, ...]) -> set[tuple[str, ...]] | None:
        """The ``key`` values (tuples of strings) of the rows buffered for ``day``, when
        every one of them is a fact (no retraction) with non-null string keys; else None.
        Each batch's keys are read once (a day's keys are asked after every append)."""
        number = day_number(day)
        log = self._day_log.get(number, [])
        done, keys = self._day_keys.get(number, (0, set()))
        for part in log[done:]:
            if keys is None:
                break
            more = _text_key_rows(part, key)
            if more is None:
                keys = None
            else:
                keys.update(more)
        self._day_keys[number] = (len(log), keys)
        return None if keys is None else set(keys)

    def dated(self, first: dt.date | None, last: dt.date) -> list[pa.Table]:
        """The buffered rows dated from ``first`` (None: the earliest) to ``last``
        inclusive, one table per valid date."""
        lo = 0 if first is None else bisect.bisect_left(self._days, day_number(first))
        hi = bisect.bisect_right(self._days, day_number(last))
        out = []
        for day in self._days[lo:hi]:
            parts = self._by_day[day]
            if len(parts) > 1:
                # One chunk per day: a filter costs per chunk, and a day written by every
                # stage of a session holds a dozen batches.
                parts[:] = [pa.concat_tables(parts).combine_chunks()]
            out.append(parts[0])
        return out


class BufferedStore:
    """Writes held in memory over a :class:`Lake`, reads resolved over both (module doc)."""

    def __init__(self, lake: Lake, *, cached_tables: Iterable[str] = ()) -> None:
        self.lake = lake
        self.cached_tables = frozenset(cached_tables)
        self._pending: dict[str, _Pending] = {}
        self._committed: dict[str, set[str]] = {}
        self._scans: dict[str, pa.Table] = {}
        self._scan_days: dict[str, np.ndarray] = {}
        self._answers: dict[str, dict[tuple[object, ...], pa.Table]] = {}
        self._lake_parts: dict[tuple[str, tuple[object, ...]], pa.Table] = {}
        self._files: dict[str, tuple[object, int, FileBounds]] = {}
        #: Per table (and loaded version): the lake's candidates of a read that found none,
        #: per scanned columns (None = all), to answer a read no file may answer with the
        #: dataset's own schema.
        self._empty_scans: dict[str, tuple[FileBounds, dict[tuple[str, ...] | None, pa.Table]]] = {}
        self._no_rows: dict[tuple[str, pa.Schema], pa.Table] = {}
        #: Per (table, scanned columns, filter): the lake's rows of a point-in-time table
        #: dated in a window, every knowledge time, scanned once per loaded table version
        #: (:meth:`_tail_rows`).
        self._tails: dict[
            tuple[object, ...], tuple[FileBounds, bitemporal.ValidRange, pa.Table]
        ] = {}

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
        if self._known_batch(name, bid, tbl):
            return WriteResult(name, bid, tbl.num_rows, False, None)
        ids = pa.chunked_array([pa.repeat(pa.scalar(bid), tbl.num_rows)], pa.string())
        pending = self._pending.get(name)
        if pending is None:
            pending = self._pending[name] = _Pending()
        pending.add(bid, with_system_columns(spec, tbl, ids, False))
        self._answers.pop(name, None)
        return WriteResult(name, bid, tbl.num_rows, True, None)

    def has_batch(self, name: str, batch_id: str) -> bool:
        """Whether ``batch_id`` is buffered or committed for table ``name``."""
        return self._known_batch(name, batch_id, None)

    def _known_batch(self, name: str, batch_id: str, rows: pa.Table | None) -> bool:
        """:meth:`has_batch`; given the batch's ``rows``, the lake's log is not asked when
        no file of the table may hold the first of them (a batch id is looked up in the
        log at ~1 ms, and nearly every write of a run is of a day the lake has not seen)."""
        pending = self._pending.get(name)
        if pending is not None and batch_id in pending.ids:
            return True
        committed = self._committed.setdefault(name, set())
        if batch_id in committed:
            return True
        if (
            rows is not None
            and rows.num_rows
            and not self._lake_files(name).may_hold(rows.column("valid_date")[0].as_py())
        ):
            return False
        if self.lake.has_batch(name, batch_id, refresh=False):
            committed.add(batch_id)
            return True
        return False

    def day_keys(self, name: str, day: dt.date) -> set[tuple[str, ...]] | None:
        """The keys (tuples of strings) of point-in-time table ``name``'s rows dated
        ``day`` as known now, without resolving a read, when that is certain: no file of
        the lake may hold a row of the day (a run's current session) and its buffered rows
        are facts with string keys. None otherwise: the caller reads them
        (:class:`~pipelines.lake.interface.DayKeys`)."""
        spec = get_table(name)
        if spec.valid_time is not ValidTime.POINT or self._lake_files(name).may_hold(day):
            return None
        pending = self._pending.get(name)
        return set() if pending is None else pending.day_keys(day, tuple(spec.key))

    def pending_rows(self) -> int:
        """Rows buffered and not yet committed."""
        return sum(p.rows for p in self._pending.values())

    def flush(self) -> dict[str, int]:
        """Commit every buffered batch: one Delta commit per table (in first-write order),
        recording each batch id. Returns the rows committed per table."""
        out: dict[str, int] = {}
        for name in list(self._pending):
            pending = self._pending[name]
            ids = list(pending.ids)
            rows = pa.concat_tables(pending.batches)
            self.lake.commit_prepared(name, rows, ids)
            self._committed.setdefault(name, set()).update(ids)
            # Committed: from now on the lake answers for these rows.
            del self._pending[name]
            self._scans.pop(name, None)
            out[name] = rows.num_rows
        # A committed batch answers as it did buffered; the reads of these sessions will
        # not be asked again (the knowledge time moves on), so keep memory bounded.
        self._answers.clear()
        self._lake_parts.clear()
        self._tails.clear()
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
        point = spec.valid_time is ValidTime.POINT
        # The lake's part of a read changes only with a flush: a read asked again after a
        # write to the table (read, append, read) scans the lake once.
        data = self._lake_parts.get((name, key))
        if data is None and name in self.cached_tables:
            window = self._window(name, spec, rng)
            scan = bitemporal.scan_columns(spec, columns)
            data = None
            if scan is not None:
                # The read's columns first: the row filter then copies only those (unless
                # the extra filter reads a column the read does not return).
                with contextlib.suppress(pa.ArrowInvalid, KeyError):
                    data = _select_rows(window.select(scan), spec, known_at, rng, filter, point)
            if data is None:
                data = _select_rows(window, spec, known_at, rng, filter, point)
                if scan is not None:
                    data = data.select(scan)
        elif data is None:
            data = self._candidates(name, spec, known_at, rng, columns, filter, key[3])
        self._lake_parts[(name, key)] = data
        pending = self._pending.get(name)
        if pending is not None:
            parts = pending.dated(rng.start if point else None, rng.end)
            if parts:
                extra = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
                extra = _select_rows(extra, spec, known_at, rng, filter, True)
                if extra.num_rows:
                    extra = bitemporal.cast_table(extra.select(data.schema.names), data.schema)
                    data = pa.concat_tables([data, extra]) if data.num_rows else extra
        if not data.num_rows:
            # No candidates: the answer is the empty table of the resolution's schema,
            # whatever the range; resolved once per schema.
            empty = self._no_rows.get((name, data.schema))
            if empty is None:
                empty = self._no_rows[(name, data.schema)] = bitemporal.resolve_as_of(
                    spec, data, rng
                )
            return empty
        return bitemporal.resolve_as_of(spec, data, rng)

    def _candidates(
        self,
        name: str,
        spec: TableSpec,
        known_at: dt.datetime,
        rng: bitemporal.ValidRange,
        columns: list[str] | None,
        filter: ds.Expression | None,
        filter_key: object = None,
    ) -> pa.Table:
        """The lake's candidates of a read (:meth:`Lake.candidates`), without a scan when
        no file of the table may hold one (a read of a day the buffer has not flushed yet:
        most reads of the tables a run writes), and for a point-in-time table read over a
        short range from the rows of a window scanned once (:meth:`_tail_rows`).
        ``filter_key``: ``filter`` serialized (the read's key)."""
        files = self._lake_files(name)
        scan = bitemporal.scan_columns(spec, columns)
        shape = None if scan is None else tuple(scan)
        seen = self._empty_scans.get(name)
        if seen is None or seen[0] is not files:
            seen = self._empty_scans[name] = (files, {})
        empty = seen[1].get(shape)
        if empty is not None and not files.may_answer(spec, bitemporal.utc(known_at), rng):
            return empty
        data = None
        if spec.valid_time is ValidTime.POINT and rng.end - rng.start <= _TAIL_SPAN:
            data = self._tail_rows(name, spec, files, known_at, rng, scan, filter, filter_key)
        if data is None:
            data = self.lake.candidates(name, known_at, rng, columns, filter, refresh=False)
        if not data.num_rows:
            seen[1].setdefault(shape, data)
        return data

    def _tail_rows(
        self,
        name: str,
        spec: TableSpec,
        files: FileBounds,
        known_at: dt.datetime,
        rng: bitemporal.ValidRange,
        scan: list[str] | None,
        filter: ds.Expression | None,
        filter_key: object,
    ) -> pa.Table:
        """The lake's candidates of a read of point-in-time table ``name``: the rows of
        the window scanned for such reads (``scan`` columns, ``filter`` applied) that the
        read's row filter keeps, in the lake's order (what :meth:`Lake.candidates` gives).

        A session's reads of a table the run writes ask for the last days (the previous
        book, the positions of the last weeks): one scan of the lake per version of the
        table answers them all, where a scan per read cost ~8 ms. The window is scanned
        again when a read falls outside it or the lake's version of the table changes
        (a flush, a compaction, a write through the lake)."""
        tkey = (name, None if scan is None else tuple(scan), filter_key)
        tail = self._tails.get(tkey)
        if (
            tail is None
            or tail[0] is not files
            or rng.start < tail[1].start
            or rng.end > tail[1].end
        ):
            # Some room either side: the next sessions' reads of the table move forward a
            # day at a time, and some look back further than others.
            window = bitemporal.ValidRange(rng.start - _TAIL_MARGIN, rng.end + _TAIL_MARGIN)
            expr = (pc.field("valid_date") >= pa.scalar(window.start, pa.date32())) & (
                pc.field("valid_date") <= pa.scalar(window.end, pa.date32())
            )
            prune: list[tuple[str, str, object]] = [
                ("valid_date", ">=", window.start),
                ("valid_date", "<=", window.end),
            ]
            if spec.partitioned:
                prune += [
                    (PARTITION_COLUMN, ">=", window.start.year),
                    (PARTITION_COLUMN, "<=", window.end.year),
                ]
            rows = self.lake.dataset(name, prune=prune, refresh=False).to_table(
                columns=scan, filter=expr if filter is None else expr & filter
            )
            tail = self._tails[tkey] = (files, window, rows)
        # The filter was applied by the scan; the exact knowledge and valid-time filter here.
        return _select_rows(tail[2], spec, known_at, rng, None, False)

    def _lake_files(self, name: str) -> FileBounds:
        """The file bounds of the table version the lake reads (refresh=False), loaded once
        per version."""
        dt_ = self.lake.table(name, refresh=False)
        version = -1 if dt_ is None else dt_.version()
        cached = self._files.get(name)
        if cached is not None and cached[0] is dt_ and cached[1] == version:
            return cached[2]
        files = FileBounds.of(dt_)
        self._files[name] = (dt_, version, files)
        return files

    def _scan(self, name: str) -> pa.Table:
        """The lake's rows of a cached table, scanned once (again after a flush to it), in
        the order of the as-of answer (``as_of_*.sql``): a point table's by valid date then
        key (a read slices its dates), an effective table's by key then valid date. The
        answer orders its rows itself; a window already in that order skips the sort."""
        scan = self._scans.get(name)
        if scan is None:
            spec = get_table(name)
            if spec.valid_time is ValidTime.POINT:
                order = ["valid_date", *spec.key]
            else:
                order = [*spec.key, "valid_date"]
            scan = self.lake.dataset(name, refresh=False).to_table()
            # A table written in date order scans in order already: then neither sort, take
            # nor combine the chunks (~1 s for 10 years of 500 names; a read's window spans
            # few of the files' chunks).
            if not bitemporal.strictly_ascending(scan, order):
                scan = scan.take(pc.sort_indices(scan, [(c, "ascending") for c in order]))
                scan = scan.combine_chunks()
            self._scans[name] = scan
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


_EQUALS = re.compile(r'^\((\w+) == "([^"\\]*)"\)$')


def _string_equality(filter: ds.Expression) -> tuple[str, str] | None:
    """``(column, value)`` when ``filter`` is exactly ``field(column) == "value"`` (the
    daily loop's "rows of this portfolio"), else None."""
    m = _EQUALS.match(str(filter))
    if m is None:
        return None
    column, value = m.group(1), m.group(2)
    same = pc.field(column) == pa.scalar(value, pa.string())
    return (column, value) if same.equals(filter) else None


def _select_rows(
    rows: pa.Table,
    spec: TableSpec,
    known_at: dt.datetime,
    rng: bitemporal.ValidRange,
    filter: ds.Expression | None,
    dated: bool,
) -> pa.Table:
    """The rows of ``rows`` an as-of read keeps: :func:`_row_filter`, as a mask of a few
    kernels when ``filter`` is none or a string equality (the dataset engine's per-call
    cost, ~0.5 ms, dominated reads of a few buffered rows). ``dated``: every row is known
    to lie in the read's valid range (the caller sliced it by valid date)."""
    equality = None if filter is None else _string_equality(filter)
    if filter is not None and (
        equality is None or rows.schema.field(equality[0]).type != pa.string()
    ):
        return rows.filter(_row_filter(spec, known_at, rng, filter))
    mask = pc.less_equal(rows.column("known_at"), pa.scalar(bitemporal.utc(known_at), _TS))
    if not dated:
        days = rows.column("valid_date")
        mask = pc.and_(mask, pc.less_equal(days, pa.scalar(rng.end, pa.date32())))
        if spec.valid_time is ValidTime.POINT:
            mask = pc.and_(mask, pc.greater_equal(days, pa.scalar(rng.start, pa.date32())))
    if equality is not None:
        column, value = equality
        mask = pc.and_(mask, pc.equal(rows.column(column), pa.scalar(value, pa.string())))
    return _keep(rows, mask)


def _keep(rows: pa.Table, mask: pa.ChunkedArray | pa.Array) -> pa.Table:
    """``rows.filter(mask)``, without copying the rows when ``mask`` keeps all of them
    or a first run of them (a window of a cached table read at a knowledge time that
    knows every row of it but the last day's: most snapshot reads)."""
    if mask.null_count or not len(mask):
        return rows.filter(mask)
    kept = pc.sum(mask).as_py() or 0
    if kept == len(mask):
        return rows
    if kept and pc.all(mask.slice(0, kept)).as_py():
        return rows.slice(0, kept)
    return rows.filter(mask)


def _text_key_rows(rows: pa.Table, key: tuple[str, ...]) -> list[tuple[str, ...]] | None:
    """Each row's ``key`` values when ``rows`` are facts (no ``_deleted`` row) whose key
    columns are strings without nulls (a key's ``str`` is then its value); else None."""
    if not rows.num_rows:
        return []
    deleted = rows.column("_deleted")
    if deleted.null_count or pc.any(deleted).as_py():
        return None
    columns = []
    for k in key:
        col = rows.column(k)
        if col.null_count or not pa.types.is_string(col.type):
            return None
        columns.append(col.to_pylist())
    return list(zip(*columns, strict=True))


__all__ = ["BufferedStore"]
