"""The :class:`Lake`: one object through which every stage reads and writes.

Writes are append-only and idempotent; reads are point-in-time (see
:mod:`pipelines.lake.bitemporal`). Works the same on a local path and on S3.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import CommitProperties, DeltaTable, Transaction
from deltalake.exceptions import CommitFailedError

from pipelines.lake import bitemporal, raw
from pipelines.lake.catalog import all_tables, get_table
from pipelines.lake.catalog.ingestion import RAW_MANIFEST
from pipelines.lake.conform import FrameLike, conform
from pipelines.lake.errors import LakeError
from pipelines.lake.files import write_batch_files
from pipelines.lake.spec import PARTITION_COLUMN, TableSpec, TableStatus, ValidTime
from pipelines.lake.storage import LakeLocation, create_table, open_table

_TS = pa.timestamp("us", tz="UTC")
_TXN_PREFIX = "alphafactory-batch:"


@dataclass(frozen=True)
class WriteResult:
    """Outcome of :meth:`Lake.write`. ``written`` is False when the batch was already there."""

    table: str
    batch_id: str
    rows: int
    written: bool
    version: int | None


@dataclass(frozen=True)
class RawFile:
    """A raw-zone object as recorded in the ``raw_manifest`` table."""

    feed: str
    logical_date: dt.date
    file_name: str
    sha256: str
    size_bytes: int
    uri: str
    file_version: int
    received_at: dt.datetime
    landed: bool  # False when these exact bytes were already in the raw zone


def content_hash(table: pa.Table) -> str:
    """sha256 of an Arrow table's IPC bytes: same rows, same order, same hash."""
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue()).hexdigest()


def _iso(value: object) -> str | None:
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()
    if isinstance(value, int):
        return dt.datetime.fromtimestamp(value / 1000, dt.UTC).isoformat()
    return None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


#: Per table spec (kept alive here, so its id is not reused): the conformed input schema
#: and the stored schema (:meth:`TableSpec.arrow_schema` builds a new one at every call).
_SCHEMAS: dict[int, tuple[TableSpec, pa.Schema, pa.Schema]] = {}


def _schemas(spec: TableSpec) -> tuple[pa.Schema, pa.Schema]:
    hit = _SCHEMAS.get(id(spec))
    if hit is None or hit[0] is not spec:
        hit = _SCHEMAS[id(spec)] = (spec, pa.schema(list(spec.input_fields)), spec.arrow_schema())
    return hit[1], hit[2]


def with_system_columns(
    spec: TableSpec, tbl: pa.Table, batch_ids: pa.ChunkedArray, deleted: bool
) -> pa.Table:
    """A conformed frame with the lake's system columns (``_deleted``, ``_batch_id``,
    ``_ingested_at`` = now, the partition column), in the table's physical schema."""
    n = tbl.num_rows
    extra: dict[str, pa.Array | pa.ChunkedArray] = {
        "_deleted": pa.repeat(pa.scalar(deleted), n),
        "_batch_id": batch_ids,
        "_ingested_at": pa.repeat(pa.scalar(_now(), _TS), n),
    }
    if spec.partitioned:
        extra[PARTITION_COLUMN] = pc.cast(pc.year(tbl.column("valid_date")), pa.int32())
    conformed, stored = _schemas(spec)
    if tbl.schema.equals(conformed, check_metadata=True):
        # The stored schema is the conformed one followed by the system columns (and the
        # partition column) in this order, of these types: the table is assembled as
        # the select-and-cast below gives it, without casting every column to itself.
        tbl = pa.Table.from_arrays([*tbl.columns, *extra.values()], schema=stored)
    else:
        for col_name, arr in extra.items():
            tbl = tbl.append_column(col_name, arr)
        tbl = tbl.select(stored.names).cast(stored)
    return _sorted_by_valid_time(spec, tbl)


def _sorted_by_valid_time(spec: TableSpec, tbl: pa.Table) -> pa.Table:
    # Sorted by valid time: scans for one date touch few row groups. Most batches
    # arrive sorted already, and sorting 1M rows costs as much as writing them.
    days = tbl.column("valid_date").to_numpy()
    if len(days) > 1 and not bool((days[1:] >= days[:-1]).all()):
        order = [("valid_date", "ascending"), *[(k, "ascending") for k in spec.key]]
        tbl = tbl.sort_by(order)
    return tbl


_EPOCH = dt.date(1970, 1, 1)
#: A stored value's bounds when a file carries no statistic for it (it may hold anything).
_LOW, _HIGH = np.iinfo(np.int64).min, np.iinfo(np.int64).max


def day_number(day: dt.date) -> int:
    """``day`` as Arrow stores a ``date32``: days since 1970-01-01."""
    return (day - _EPOCH).days


def _micros(ts: dt.datetime) -> int:
    """An aware datetime as microseconds since the epoch (how ``known_at`` is stored)."""
    delta = ts - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class FileBounds:
    """Per-file bounds of one loaded version of a lake table (from its Delta log's
    statistics): which reads and batch ids the table cannot hold, answered without a scan
    or a look-up in the log. A file without a statistic may hold anything."""

    def __init__(self, actions: pa.Table | None) -> None:
        def bound(column: str, missing: int) -> np.ndarray:
            if actions is None or column not in actions.column_names:
                return np.full(0 if actions is None else actions.num_rows, missing, np.int64)
            values = actions.column(column)
            if not (pa.types.is_date32(values.type) or pa.types.is_timestamp(values.type)):
                return np.full(actions.num_rows, missing, np.int64)  # not a usable bound
            # date32 -> its day number, timestamp -> microseconds since the epoch.
            if pa.types.is_date32(values.type):
                values = pc.cast(values, pa.int32())
            else:
                values = pc.cast(values, pa.timestamp("us", values.type.tz)).cast(pa.int64())
            values = values.cast(pa.int64())
            return np.asarray(values.fill_null(missing).to_numpy(), np.int64)

        self.min_valid = bound("min.valid_date", _LOW)
        self.max_valid = bound("max.valid_date", _HIGH)
        self.min_known = bound("min.known_at", _LOW)  # microseconds

    @classmethod
    def of(cls, table: DeltaTable | None) -> FileBounds:
        """The bounds of ``table``'s loaded version (None: a table never written)."""
        return cls(None if table is None else pa.table(table.get_add_actions(flatten=True)))

    def may_answer(
        self, spec: TableSpec, known_at: dt.datetime, rng: bitemporal.ValidRange
    ) -> bool:
        """Whether some file may hold a row an as-of read of ``rng`` at ``known_at`` keeps
        (False: the read's candidates are no rows, whatever its extra filter)."""
        known_us = _micros(bitemporal.utc(known_at))
        hit = (self.min_valid <= day_number(rng.end)) & (self.min_known <= known_us)
        if spec.valid_time is ValidTime.POINT:
            hit &= self.max_valid >= day_number(rng.start)
        return bool(hit.any())

    def may_hold(self, day: dt.date) -> bool:
        """Whether some file may hold a row dated ``day`` (False: no batch with such a row
        was ever committed, since a committed batch's rows are all in the table)."""
        d = day_number(day)
        return bool(((self.min_valid <= d) & (self.max_valid >= d)).any())


def _has_txn(dt_: DeltaTable, batch_id: str) -> bool:
    """Whether ``batch_id``'s transaction is in the table's log."""
    return dt_.transaction_version(_TXN_PREFIX + batch_id) is not None


def _maybe_committed(dt_: DeltaTable, full: pa.Table, batch_ids: list[str]) -> list[str]:
    """The ones of ``batch_ids`` the table may already hold: all but those with a row
    dated where no file of the table has rows (a committed batch's rows are all in the
    table). Saves a look-up in the log (~1 ms) per batch of a flush of new days."""
    if not full.num_rows:
        return batch_ids
    firsts = (
        full.select(["_batch_id", "valid_date"])
        .group_by("_batch_id", use_threads=False)
        .aggregate([("valid_date", "min")])
    )
    first = dict(
        zip(
            firsts.column("_batch_id").to_pylist(),
            firsts.column("valid_date_min").to_pylist(),
            strict=True,
        )
    )
    bounds = FileBounds.of(dt_)
    return [b for b in batch_ids if b not in first or bounds.may_hold(first[b])]


class Lake:
    """Bitemporal Delta Lake over a local path or S3.

    Example:
        >>> lake = Lake("/tmp/lake")  # doctest: +SKIP
        >>> lake.write("prices", frame, known_at=publish_time)  # doctest: +SKIP
        >>> lake.as_of("prices", known_at=T, valid_at=date(2024, 5, 2))  # doctest: +SKIP
    """

    def __init__(
        self,
        root: str,
        storage_options: dict[str, str] | None = None,
        *,
        checkpoint_interval: int = 20,
        retention_hours: int = 168,
        max_commit_retries: int = 50,
    ) -> None:
        self.location = LakeLocation(root, dict(storage_options or {}))
        self.checkpoint_interval = checkpoint_interval
        self.retention_hours = retention_hours
        self.max_commit_retries = max_commit_retries
        self._tables: dict[str, DeltaTable] = {}
        self._raw: raw.RawStore | None = None

    @classmethod
    def from_settings(cls) -> Lake:
        """The lake configured by ``ALPHAFACTORY_*`` settings."""
        from pipelines.config import get_settings

        s = get_settings()
        return cls(
            s.lake_root,
            s.storage_options(),
            checkpoint_interval=s.checkpoint_interval,
            retention_hours=s.vacuum_retention_hours,
        )

    def __repr__(self) -> str:
        return f"Lake({self.location.root!r})"

    # ---- tables ---------------------------------------------------------------------------

    def table(self, name: str, *, create: bool = False, refresh: bool = True) -> DeltaTable | None:
        """The latest version of table ``name`` (refreshed), or None if never written.

        ``refresh=False`` skips reading the log for new commits when the table is already
        open: for a caller that knows nobody else wrote since (the backtest's buffer).
        """
        spec = get_table(name)
        dt_ = self._tables.get(name)
        if dt_ is not None:
            if refresh:
                dt_.update_incremental()
            return dt_
        dt_ = open_table(self.location, spec)
        if dt_ is None and create:
            dt_ = create_table(self.location, spec, self.checkpoint_interval, self.retention_hours)
        if dt_ is not None:
            self._tables[name] = dt_
        return dt_

    def init(self) -> list[str]:
        """Create every declared table that does not exist yet; returns the created names."""
        created = []
        for name in all_tables():
            if open_table(self.location, get_table(name)) is None:
                self.table(name, create=True)
                created.append(name)
        return created

    def status(self, name: str) -> TableStatus:
        """Physical state of a table: version, files, rows, size, last commit, properties."""
        dt_ = self.table(name)
        if dt_ is None:
            return TableStatus(name=name, exists=False)
        actions = pa.table(dt_.get_add_actions(flatten=True))
        rows = pc.sum(actions.column("num_records")).as_py() if actions.num_rows else 0
        size = pc.sum(actions.column("size_bytes")).as_py() if actions.num_rows else 0
        # Newest data file rather than dt.history(): history replays the whole log and
        # hangs against some S3-compatible servers (seen with moto).
        last = pc.max(actions.column("modification_time")).as_py() if actions.num_rows else None
        return TableStatus(
            name=name,
            exists=True,
            version=dt_.version(),
            files=actions.num_rows,
            rows=int(rows or 0),
            size_bytes=int(size or 0),
            last_commit=_iso(last),
            properties=dict(dt_.metadata().configuration),
        )

    # ---- writes ---------------------------------------------------------------------------

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
        """Append ``data`` to table ``name`` as one idempotent commit.

        The frame must carry the table's declared columns (``known_at``/``valid_date`` may
        be given as arguments instead). It is checked whole before anything is written:
        a bad frame raises :class:`~pipelines.lake.errors.LakeSchemaError` and writes
        nothing. ``batch_id`` defaults to a hash of the content, so writing the same batch
        again — after a retry, a crash or from another process — adds nothing. The batch
        id is recorded atomically with the data as a Delta transaction identifier.

        ``row_batch_ids`` gives each row its own batch (e.g. one per vendor file in a
        backfill chunk): rows of batches already committed are dropped, the rest are
        written in one commit that records every remaining batch id; ``empty_batch_ids``
        are batches with no rows to record in the same commit. ``deleted=True``
        writes retraction tombstones for the given keys.
        """
        spec = get_table(name)
        tbl = conform(spec, data, known_at=known_at, valid_date=valid_date)
        if row_batch_ids is None:
            bid = batch_id or f"{name}:{content_hash(tbl)}"
            if deleted:
                bid += ":deleted"
            ids = pa.chunked_array([pa.repeat(pa.scalar(bid), tbl.num_rows)], pa.string())
        else:
            if len(row_batch_ids) != tbl.num_rows:
                raise LakeError(
                    f"row_batch_ids has {len(row_batch_ids)} values for {tbl.num_rows} rows"
                )
            ids = pc.cast(row_batch_ids, pa.string())
            bid = batch_id or f"{name}:multi:{content_hash(tbl)}"
        dt_ = self.table(name, create=True)
        assert dt_ is not None
        distinct = [b for b in pc.unique(ids).to_pylist() if b is not None]
        distinct += [b for b in (empty_batch_ids or []) if b not in distinct]
        distinct = distinct or [bid]
        done = {b for b in distinct if dt_.transaction_version(_TXN_PREFIX + b) is not None}
        if done:
            keep = pc.invert(pc.is_in(ids, pa.array(sorted(done), pa.string())))
            tbl, ids = tbl.filter(keep), ids.filter(keep)
        todo = [b for b in distinct if b not in done]
        if not todo:
            return WriteResult(name, bid, tbl.num_rows, False, dt_.version())
        full = with_system_columns(spec, tbl, ids, deleted)
        return self._commit(name, dt_, full, todo, bid, tbl.num_rows)

    def commit_prepared(self, name: str, full: pa.Table, batch_ids: list[str]) -> WriteResult:
        """Commit rows that already carry their system columns (``_batch_id``,
        ``_ingested_at``...; see :func:`with_system_columns`) as one Delta commit recording
        every one of ``batch_ids``. Rows of batches already committed are dropped.

        For a store that prepared its writes earlier (the backtest's buffer): the rows keep
        the ingestion times they were given then, so reads resolve exactly as they did
        before the commit.
        """
        spec = get_table(name)
        dt_ = self.table(name, create=True)
        assert dt_ is not None
        done = {b for b in _maybe_committed(dt_, full, batch_ids) if _has_txn(dt_, b)}
        if done:
            keep = pc.invert(
                pc.is_in(full.column("_batch_id"), pa.array(sorted(done), pa.string()))
            )
            full = full.filter(keep)
        todo = [b for b in batch_ids if b not in done]
        bid = todo[0] if len(todo) == 1 else f"{name}:prepared"
        if not todo:
            return WriteResult(name, bid, 0, False, dt_.version())
        return self._commit(name, dt_, _sorted_by_valid_time(spec, full), todo, bid, full.num_rows)

    def _commit(
        self, name: str, dt_: DeltaTable, full: pa.Table, todo: list[str], bid: str, rows: int
    ) -> WriteResult:
        spec = get_table(name)
        now_ms = int(time.time() * 1000)
        commit = CommitProperties(
            custom_metadata={
                "alphafactory.batch_id": bid if len(todo) == 1 else f"{len(todo)} batches",
                "alphafactory.rows": str(full.num_rows),
            },
            max_commit_retries=self.max_commit_retries,
            app_transactions=[Transaction(_TXN_PREFIX + b, 1, now_ms) for b in todo],
        )
        actions = write_batch_files(
            spec, full, self.location.table_uri(name), self.location.options()
        )
        try:
            dt_.create_write_transaction(
                actions,
                mode="append",
                schema=spec.arrow_schema(),
                partition_by=[PARTITION_COLUMN] if spec.partitioned else None,
                commit_properties=commit,
            )
        except CommitFailedError:
            # A concurrent writer may have committed these very batches first; our files
            # stay unreferenced and vacuum removes them.
            dt_.update_incremental()
            if all(dt_.transaction_version(_TXN_PREFIX + b) is not None for b in todo):
                return WriteResult(name, bid, rows, False, dt_.version())
            raise
        dt_.update_incremental()
        return WriteResult(name, bid, full.num_rows, True, dt_.version())

    def has_batch(self, name: str, batch_id: str, *, refresh: bool = True) -> bool:
        """Whether ``batch_id`` was ever committed to table ``name`` (``refresh``: see
        :meth:`table`)."""
        dt_ = self.table(name, refresh=refresh)
        return dt_ is not None and dt_.transaction_version(_TXN_PREFIX + batch_id) is not None

    def committed_batches(self, name: str, batch_ids: list[str]) -> set[str]:
        """The ones of ``batch_ids`` ever committed to table ``name`` (one log refresh)."""
        dt_ = self.table(name)
        if dt_ is None:
            return set()
        return {b for b in batch_ids if dt_.transaction_version(_TXN_PREFIX + b) is not None}

    # ---- reads ----------------------------------------------------------------------------

    def dataset(
        self, name: str, *, prune: list[Any] | str | None = None, refresh: bool = True
    ) -> ds.Dataset:
        """The table's current version as a pyarrow dataset (DuckDB scans it directly).

        ``prune`` selects files by partition values and per-file statistics (see
        ``DeltaTable.file_uris``); rows must still be filtered after reading.
        """
        dt_ = self.table(name, refresh=refresh)
        if dt_ is None:
            return ds.dataset(get_table(name).arrow_schema().empty_table())
        return dt_.to_pyarrow_dataset(file_pruning_predicate=prune)

    def as_of(
        self,
        name: str,
        *,
        known_at: dt.datetime,
        valid_at: dt.date | bitemporal.ValidRange | tuple[dt.date, dt.date],
        columns: list[str] | None = None,
        filter: ds.Expression | None = None,
    ) -> pa.Table:
        """Exactly what was knowable at ``known_at`` about ``valid_at`` (a date or range).

        For each (key, valid_date) the version with the latest ``known_at <= known_at``;
        effective tables return the versions in force during the range, with a
        ``valid_until`` column (exclusive; null = still in force). ``filter`` is an extra
        pyarrow expression applied while scanning (e.g. on ``security_id``).
        """
        spec = get_table(name)
        rng = bitemporal.as_valid_range(valid_at)
        return bitemporal.resolve_as_of(
            spec, self.candidates(name, known_at, rng, columns, filter), rng
        )

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
        """The rows an :meth:`as_of` read resolves (every version that may answer it);
        ``refresh``: see :meth:`table`."""
        spec = get_table(name)
        expr, prune = bitemporal.candidate_filter(spec, known_at, rng)
        if filter is not None:
            expr = expr & filter
        return self.dataset(name, prune=prune, refresh=refresh).to_table(
            columns=bitemporal.scan_columns(spec, columns), filter=expr
        )

    def history(self, name: str, key: dict[str, Any]) -> pa.Table:
        """Every version ever written for ``key`` (all valid dates, all knowledge times)."""
        spec = get_table(name)
        unknown = [k for k in key if k not in spec.column_names]
        if unknown:
            raise LakeError(f"table {name!r} has no column {unknown[0]!r}")
        expr: ds.Expression | None = None
        for col, value in key.items():
            term = pc.field(col) == value
            expr = term if expr is None else expr & term
        data = self.dataset(name).to_table(filter=expr)
        return bitemporal.order_history(data)

    def at_version(self, name: str, version: int | dt.datetime) -> pa.Table:
        """Delta time travel for audit: the whole table as of a version number or timestamp."""
        dt_ = open_table(self.location, get_table(name))
        if dt_ is None:
            raise LakeError(f"table {name!r} has never been written")
        dt_.load_as_version(version)
        return dt_.to_pyarrow_table()

    def versions(self, name: str) -> list[dict[str, Any]]:
        """Commit history (newest first): version, timestamp, operation, batch id, rows."""
        dt_ = self.table(name)
        return [] if dt_ is None else list(dt_.history())

    # ---- raw zone -------------------------------------------------------------------------

    @property
    def raw_store(self) -> raw.RawStore:
        if self._raw is None:
            self._raw = raw.make_raw_store(self.location.raw_uri(), self.location.options())
        return self._raw

    def land_raw(
        self,
        feed: str,
        logical_date: dt.date,
        file_name: str,
        data: bytes,
        *,
        received_at: dt.datetime | None = None,
    ) -> RawFile:
        """Keep a vendor file immutably and record it in ``raw_manifest``.

        Landing the same bytes again is a no-op that returns the existing record; different
        bytes under the same name become a new ``file_version`` and never overwrite.
        """
        return self.land_raw_many([(feed, logical_date, file_name, data)], received_at=received_at)[
            0
        ]

    def land_raw_many(
        self,
        items: list[tuple[str, dt.date, str, bytes]],
        *,
        received_at: dt.datetime | None = None,
    ) -> list[RawFile]:
        """:meth:`land_raw` for many ``(feed, date, file name, bytes)`` at once, in one commit."""
        if not items:
            return []
        feeds = sorted({feed for feed, *_ in items})
        first, last = min(d for _, d, *_ in items), max(d for _, d, *_ in items)
        previous = (
            self.dataset(RAW_MANIFEST.name)
            .to_table(
                filter=pc.field("feed").isin(feeds)
                & (pc.field("valid_date") >= first)
                & (pc.field("valid_date") <= last),
                columns=[
                    "feed",
                    "file_name",
                    "valid_date",
                    "sha256",
                    "size_bytes",
                    "uri",
                    "file_version",
                    "received_at",
                ],
            )
            .to_pylist()
        )
        seen: dict[tuple[str, dt.date, str], dict[str, dict[str, Any]]] = {}
        for row in previous:
            seen.setdefault((row["feed"], row["valid_date"], row["file_name"]), {})[
                row["sha256"]
            ] = row
        received = received_at or _now()
        out: list[RawFile] = []
        records: list[dict[str, Any]] = []
        batch_ids: list[str] = []
        shas = [raw.sha256_hex(data) for *_, data in items]
        keys = [
            raw.object_key(feed, day.isoformat(), sha, name)
            for (feed, day, name, _), sha in zip(items, shas, strict=True)
        ]
        # Landing is I/O-bound (a create-only file with fsync, or an S3 put): overlap them.
        with ThreadPoolExecutor(max_workers=min(8, len(items))) as pool:
            list(pool.map(self.raw_store.put_if_absent, keys, [d for *_, d in items]))
        for (feed, day, name, data), sha, key in zip(items, shas, keys, strict=True):
            versions = seen.setdefault((feed, day, name), {})
            if sha in versions:
                row = versions[sha]
                out.append(
                    RawFile(
                        feed,
                        day,
                        name,
                        sha,
                        row["size_bytes"],
                        row["uri"],
                        row["file_version"],
                        row["received_at"],
                        landed=False,
                    )
                )
                continue
            version = len(versions) + 1
            uri = self.raw_store.uri(key)
            versions[sha] = {
                "size_bytes": len(data),
                "uri": uri,
                "file_version": version,
                "received_at": received,
            }
            out.append(
                RawFile(feed, day, name, sha, len(data), uri, version, received, landed=True)
            )
            records.append(
                {
                    "feed": feed,
                    "file_name": name,
                    "sha256": sha,
                    "size_bytes": len(data),
                    "uri": uri,
                    "file_version": version,
                    "received_at": received,
                    "valid_date": day,
                    "known_at": received,
                }
            )
            batch_ids.append(f"raw:{feed}:{day.isoformat()}:{name}:{sha}")
        if records:
            self.write(
                RAW_MANIFEST.name,
                pa.Table.from_pylist(records, schema=pa.schema(list(RAW_MANIFEST.input_fields))),
                row_batch_ids=pa.array(batch_ids),
            )
        return out

    def read_raw(self, record: RawFile) -> bytes:
        """The bytes of a landed file, verified against its checksum."""
        key = raw.object_key(
            record.feed, record.logical_date.isoformat(), record.sha256, record.file_name
        )
        data = self.raw_store.get(key)
        if raw.sha256_hex(data) != record.sha256:
            raise raw.RawZoneError(f"raw object {key} does not match its sha256")
        return data
