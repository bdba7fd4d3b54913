"""Make a caller's frame conform to a table's declared input schema, or say exactly why not.

Nothing is written unless the whole frame conforms, so a failed batch leaves no trace.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, TypeAlias

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.lake.errors import LakeSchemaError
from pipelines.lake.spec import TableSpec

FrameLike: TypeAlias = pd.DataFrame | pa.Table


def to_arrow(data: FrameLike) -> pa.Table:
    """A pandas frame or Arrow table as an Arrow table (the index of a frame is dropped)."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise TypeError(f"expected a pandas DataFrame or pyarrow Table, got {type(data).__name__}")


def _first_index(mask: pa.ChunkedArray | pa.Array) -> int | None:
    """Position of the first true value of a boolean array, or None."""
    idx = pc.index(mask.fill_null(False), True).as_py()
    return None if idx is None or idx < 0 else int(idx)


def _first_uncastable(table: str, name: str, col: pa.ChunkedArray, target: pa.DataType) -> None:
    """Raise naming the first row whose value cannot be cast safely to ``target``."""
    values = col.to_pylist()
    for row, value in enumerate(values):
        if value is None:
            continue
        try:
            pa.array([value], type=col.type).cast(target, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise LakeSchemaError(
                table, name, f"cannot convert {col.type} to {target}: {exc}", row, value
            ) from None
    raise LakeSchemaError(table, name, f"cannot convert column of type {col.type} to {target}")


def _cast_column(
    table: str, name: str, col: pa.ChunkedArray, target: pa.DataType
) -> pa.ChunkedArray:
    if col.type == target:
        return col
    if pa.types.is_timestamp(target):
        if pa.types.is_timestamp(col.type) and col.type.tz is None:
            # A naive knowledge time is ambiguous by hours; refuse rather than guess.
            row = _first_index(pc.is_valid(col))
            raise LakeSchemaError(
                table, name, "timestamp has no timezone; supply UTC-aware timestamps", row
            )
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            try:
                parsed = pc.cast(col, pa.timestamp("us", tz="UTC"))
            except pa.ArrowInvalid:
                _first_uncastable(table, name, col, target)
            return parsed
    if pa.types.is_date32(target) and pa.types.is_timestamp(col.type):
        # Dates given as midnight timestamps (pandas' usual form) are accepted only when
        # they carry no time of day, so no information is dropped silently.
        as_date = pc.cast(col, pa.date32())
        back = pc.cast(pc.cast(as_date, pa.timestamp("us", tz=col.type.tz)), col.type)
        bad = _first_index(pc.not_equal(back, col))
        if bad is not None:
            raise LakeSchemaError(table, name, "date has a time of day", bad, col[bad].as_py())
        return as_date
    if pa.types.is_floating(target) and (
        pa.types.is_integer(col.type) or pa.types.is_floating(col.type)
    ):
        return pc.cast(col, target, safe=False)
    if pa.types.is_null(col.type):
        return pa.chunked_array([pa.nulls(len(col), target)])
    try:
        return pc.cast(col, target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        _first_uncastable(table, name, col, target)
        raise  # unreachable: _first_uncastable always raises


def conform(
    spec: TableSpec,
    data: FrameLike,
    *,
    known_at: dt.datetime | None = None,
    valid_date: dt.date | None = None,
) -> pa.Table:
    """Return ``data`` as an Arrow table with exactly ``spec.input_fields``, in order.

    ``known_at`` / ``valid_date`` fill the column when the frame lacks it. Raises
    :class:`LakeSchemaError` naming table, column and (when it applies) the first bad row
    for: a missing or unexpected column, a value that cannot be converted to the declared
    type, a naive timestamp, or a null in a key or non-nullable column.
    """
    tbl = to_arrow(data)
    n = tbl.num_rows
    fills: dict[str, Any] = {}
    if known_at is not None:
        if known_at.tzinfo is None:
            raise LakeSchemaError(spec.name, "known_at", "known_at must be timezone-aware")
        fills["known_at"] = pa.scalar(known_at.astimezone(dt.UTC), pa.timestamp("us", tz="UTC"))
    if valid_date is not None:
        fills["valid_date"] = pa.scalar(valid_date, pa.date32())

    expected = {f.name for f in spec.input_fields}
    extra = [c for c in tbl.column_names if c not in expected]
    if extra:
        raise LakeSchemaError(
            spec.name, extra[0], f"unexpected column (declared: {', '.join(sorted(expected))})"
        )

    arrays: list[pa.ChunkedArray] = []
    for fld in spec.input_fields:
        if fld.name in tbl.column_names:
            col = tbl.column(fld.name)
        elif fld.name in fills:
            col = (
                pa.chunked_array([pa.repeat(fills[fld.name], n)])
                if n
                else pa.chunked_array([], type=fills[fld.name].type)
            )
        else:
            raise LakeSchemaError(spec.name, fld.name, "missing column")
        col = _cast_column(spec.name, fld.name, col, fld.type)
        if (not fld.nullable or fld.name in spec.key) and col.null_count:
            bad = _first_index(pc.is_null(col))
            if bad is not None:
                kind = "key" if fld.name in spec.key else "non-nullable"
                raise LakeSchemaError(spec.name, fld.name, f"null in {kind} column", bad)
        arrays.append(col)
    return pa.Table.from_arrays(arrays, schema=pa.schema(list(spec.input_fields)))
