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


def _columns(data: FrameLike) -> pa.Table:
    """:func:`to_arrow`, for a frame of uniquely named string columns converted column by
    column as ``pa.Table.from_pandas`` converts them (``pa.array(column, from_pandas=True)``)
    without the pandas metadata it builds and :func:`conform` drops (most of its cost
    on the small frames the daily stages write)."""
    if isinstance(data, pd.DataFrame):
        names = list(data.columns)
        if (
            names
            and all(type(c) is str for c in names)
            and len(set(names)) == len(names)
            and not any(isinstance(t, pd.SparseDtype) for t in data.dtypes)
        ):
            try:
                arrays = [pa.array(col, from_pandas=True, safe=True) for _, col in data.items()]
                return pa.Table.from_arrays(arrays, names=names)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                pass  # to_arrow raises it with the column named
    return to_arrow(data)


#: Per table spec (kept alive here, so its id is not reused): its input fields, their
#: names, the conformed schema and, per field, whether a null in it is refused.
_PLANS: dict[int, tuple[TableSpec, tuple[pa.Field, ...], set[str], pa.Schema, list[bool]]] = {}


def _plan(spec: TableSpec) -> tuple[tuple[pa.Field, ...], set[str], pa.Schema, list[bool]]:
    hit = _PLANS.get(id(spec))
    if hit is None or hit[0] is not spec:
        fields = spec.input_fields
        hit = _PLANS[id(spec)] = (
            spec,
            fields,
            {f.name for f in fields},
            pa.schema(list(fields)),
            [not f.nullable or f.name in spec.key for f in fields],
        )
    return hit[1], hit[2], hit[3], hit[4]


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
    tbl = _columns(data)
    n = tbl.num_rows
    fills: dict[str, Any] = {}
    if known_at is not None:
        if known_at.tzinfo is None:
            raise LakeSchemaError(spec.name, "known_at", "known_at must be timezone-aware")
        fills["known_at"] = pa.scalar(known_at.astimezone(dt.UTC), pa.timestamp("us", tz="UTC"))
    if valid_date is not None:
        fills["valid_date"] = pa.scalar(valid_date, pa.date32())

    fields, expected, schema, refuse_nulls = _plan(spec)
    present = tbl.column_names
    extra = [c for c in present if c not in expected]
    if extra:
        raise LakeSchemaError(
            spec.name, extra[0], f"unexpected column (declared: {', '.join(sorted(expected))})"
        )

    present_set = set(present)
    arrays: list[pa.ChunkedArray] = []
    for fld, no_nulls in zip(fields, refuse_nulls, strict=True):
        name = fld.name
        if name in present_set:
            col = tbl.column(name)
        elif name in fills:
            col = (
                pa.chunked_array([pa.repeat(fills[name], n)])
                if n
                else pa.chunked_array([], type=fills[name].type)
            )
        else:
            raise LakeSchemaError(spec.name, name, "missing column")
        col = _cast_column(spec.name, name, col, fld.type)
        if no_nulls and col.null_count:
            bad = _first_index(pc.is_null(col))
            if bad is not None:
                kind = "key" if name in spec.key else "non-nullable"
                raise LakeSchemaError(spec.name, name, f"null in {kind} column", bad)
        arrays.append(col)
    return pa.Table.from_arrays(arrays, schema=schema)
