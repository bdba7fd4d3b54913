"""Write a batch's Parquet files with Arrow's C++ writer and describe them for the Delta log.

delta-rs commits the files (``DeltaTable.create_write_transaction``), so the table keeps
Delta's atomic, optimistic-concurrency commits; the data files themselves are written by
``pyarrow.parquet``, which is several times faster than the Rust writer on this machine.
Per-file min/max/null-count statistics go into the log so readers can skip files.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake.transaction import AddAction, RemoveAction

from pipelines.lake.spec import PARTITION_COLUMN, TableSpec

ROW_GROUP_ROWS = 64_000


def filesystem_for(
    table_uri: str, storage_options: dict[str, str] | None
) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and base path for a table URI (local path or ``s3://``)."""
    if not table_uri.startswith("s3://"):
        return pafs.LocalFileSystem(), table_uri
    opts = storage_options or {}
    endpoint = opts.get("AWS_ENDPOINT_URL")
    scheme = "https"
    if endpoint and endpoint.startswith("http://"):
        scheme = "http"
    fs = pafs.S3FileSystem(
        access_key=opts.get("AWS_ACCESS_KEY_ID"),
        secret_key=opts.get("AWS_SECRET_ACCESS_KEY"),
        session_token=opts.get("AWS_SESSION_TOKEN"),
        region=opts.get("AWS_REGION", "us-east-1"),
        endpoint_override=endpoint.split("://", 1)[1] if endpoint else None,
        scheme=scheme,
    )
    return fs, table_uri.removeprefix("s3://")


def _stat_value(value: Any, type_: pa.DataType, upper: bool) -> Any:
    """A Parquet statistic as JSON for the Delta log (timestamps in ms, rounded outward)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.astimezone(dt.UTC)
        floor = value.replace(microsecond=value.microsecond // 1000 * 1000)
        if upper and floor != value:
            floor += dt.timedelta(milliseconds=1)
        return floor.strftime("%Y-%m-%dT%H:%M:%S.") + f"{floor.microsecond // 1000:03d}Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


#: Bounds written for a float column holding NaN, or in place of an infinite bound (JSON
#: has no infinity): wide enough that a comparison with a finite value never prunes.
_FLOAT_BOUND = float(np.finfo(np.float64).max)


def _nan_columns(table: pa.Table) -> set[str]:
    """The float columns of ``table`` holding a NaN (Parquet's float statistics leave NaN out)."""
    return {
        f.name
        for f in table.schema
        if pa.types.is_floating(f.type) and pc.any(pc.is_nan(table.column(f.name))).as_py()
    }


def file_stats(
    meta: pq.FileMetaData,
    schema: pa.Schema,
    skip: set[str],
    nan_columns: frozenset[str] | set[str] = frozenset(),
) -> str:
    """Delta ``stats`` JSON (numRecords, minValues, maxValues, nullCount) from a footer.

    Every column with statistics gets bounds, floats too: the Delta reader turns a column
    without bounds into ``column >= null``, which prunes every file of a read filtered on it
    (``close > 1.5`` answered no rows). A float column holding NaN (``nan_columns``: Parquet's
    bounds leave NaN out) gets the widest finite bounds, so no comparison prunes its file;
    an infinite bound is clamped to them."""
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for col in range(meta.num_columns):
        name = meta.schema.column(col).name
        if name in skip:
            continue
        type_ = schema.field(name).type
        lo = hi = None
        n_null = 0
        complete = True
        for rg in range(meta.num_row_groups):
            st = meta.row_group(rg).column(col).statistics
            if st is None:
                complete = False
                break
            n_null += st.null_count or 0
            if st.has_min_max:
                lo = st.min if lo is None or st.min < lo else lo
                hi = st.max if hi is None or st.max > hi else hi
        if not complete:
            continue
        nulls[name] = n_null
        if pa.types.is_floating(type_):
            if name in nan_columns:
                lo, hi = -_FLOAT_BOUND, _FLOAT_BOUND
            if lo is not None and hi is not None:
                mins[name] = max(float(lo), -_FLOAT_BOUND)
                maxs[name] = min(float(hi), _FLOAT_BOUND)
        elif lo is not None:
            mins[name] = _stat_value(lo, type_, upper=False)
            maxs[name] = _stat_value(hi, type_, upper=True)
    return json.dumps(
        {"numRecords": meta.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls}
    )


def write_batch_files(
    spec: TableSpec, table: pa.Table, table_uri: str, storage_options: dict[str, str] | None
) -> list[AddAction | RemoveAction]:
    """Write ``table`` (already in the stored schema, sorted by valid_date) as Parquet files.

    One file per ``valid_year`` for partitioned tables, else one file. Returns the Delta
    add actions; nothing is visible to readers until they are committed.
    """
    fs, base = filesystem_for(table_uri, storage_options)
    if spec.partitioned:
        years = table.column(PARTITION_COLUMN)
        parts = []
        for year in pc.unique(years).to_pylist():
            part = table.filter(pc.equal(years, year)).drop_columns([PARTITION_COLUMN])
            parts.append((f"{PARTITION_COLUMN}={year}", {PARTITION_COLUMN: str(year)}, part))
    else:
        parts = [("", {}, table)]
    actions: list[AddAction | RemoveAction] = []
    for prefix, values, part in parts:
        name = f"part-{uuid.uuid4()}.snappy.parquet"
        rel = f"{prefix}/{name}" if prefix else name
        collector: list[pq.FileMetaData] = []
        fs.create_dir(f"{base}/{prefix}" if prefix else base, recursive=True)
        pq.write_table(
            part,
            f"{base}/{rel}",
            filesystem=fs,
            row_group_size=ROW_GROUP_ROWS,
            compression="snappy",
            # Dictionary-encode strings only: on float columns it costs 2x write time
            # with small row groups and saves little space.
            use_dictionary=[f.name for f in part.schema if pa.types.is_string(f.type)],
            metadata_collector=collector,
        )
        size = fs.get_file_info(f"{base}/{rel}").size
        stats = file_stats(collector[0], part.schema, skip=set(), nan_columns=_nan_columns(part))
        actions.append(AddAction(rel, int(size or 0), values, int(time.time() * 1000), True, stats))
    return actions
