"""Logical column types: which pandas dtypes satisfy them, and their canonical dtype.

Great Expectations checks a column's type by comparing its pandas dtype with a name. The
same logical type reaches us in several equivalent representations (pandas 3 ``str`` vs an
``object`` column of Python strings; ``int64`` volumes for a ``float`` column; dates as
``datetime64`` of any unit, Arrow ``date32`` or Python ``date`` objects; UTC timestamps in
any unit). :func:`canonical_view` converts *only* those lossless equivalents to one
canonical dtype per logical type, so GX's ``ExpectColumnTypeToBe(canonical)`` passes
exactly when the column holds the declared type — text that could not be parsed as a
number (``"12.3USD"``) stays text and fails the type rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
from pandas.api.types import infer_dtype, is_object_dtype

from pipelines.contracts.spec import LogicalType

#: The dtype name each logical type is canonicalised to (what the GX type rule expects).
CANONICAL_DTYPE: dict[LogicalType, str] = {
    LogicalType.STRING: "str",
    LogicalType.FLOAT: "float64",
    LogicalType.INT: "int64",
    LogicalType.BOOL: "bool",
    # Unit-less: GX accepts any datetime64 resolution for this name.
    LogicalType.DATE: "datetime64",
    LogicalType.TIMESTAMP: "datetime64[us, UTC]",
}


@dataclass(frozen=True)
class Coerced:
    """A column in canonical form, or the reason it could not be put there."""

    series: pd.Series
    ok: bool
    observed: str


def _is_arrow(dtype: object, pred: object) -> bool:
    return isinstance(dtype, pd.ArrowDtype) and bool(pred(dtype.pyarrow_dtype))  # type: ignore[operator]


def _empty_as(s: pd.Series, logical: LogicalType) -> pd.Series:
    """An empty or all-null column as the canonical dtype (dates at second resolution)."""
    target = "datetime64[s]" if logical is LogicalType.DATE else CANONICAL_DTYPE[logical]
    return s.astype(pd.api.types.pandas_dtype(target))


def coerce_column(s: pd.Series, logical: LogicalType) -> Coerced:
    """``s`` converted losslessly to the canonical dtype of ``logical`` when it is an
    equivalent representation; otherwise ``s`` unchanged with ``ok=False``.

    Never raises: an unconvertible column is a type-rule failure, not an error.
    """
    dtype = s.dtype
    observed = str(dtype)
    try:
        # A header-only file or an all-null column carries no type of its own (an all-null
        # int/bool column cannot be held as int64/bool, so it stays a type failure).
        empty = len(s) == 0 or (is_object_dtype(dtype) and infer_dtype(s, skipna=True) == "empty")
        if empty and (len(s) == 0 or logical not in (LogicalType.INT, LogicalType.BOOL)):
            return Coerced(_empty_as(s, logical), True, observed)
        if logical is LogicalType.FLOAT:
            if pd.api.types.is_float_dtype(dtype) and not isinstance(dtype, pd.ArrowDtype):
                return Coerced(s if dtype == np.float64 else s.astype("float64"), True, observed)
            if (
                pd.api.types.is_integer_dtype(dtype)
                or pd.api.types.is_float_dtype(dtype)
                or _is_arrow(dtype, pa.types.is_floating)
                or _is_arrow(dtype, pa.types.is_integer)
            ):
                # Nullable / Arrow numerics: nulls become NaN, which is how float64 stores them.
                return Coerced(s.astype("float64"), True, observed)
        elif logical is LogicalType.INT:
            if pd.api.types.is_integer_dtype(dtype) or _is_arrow(dtype, pa.types.is_integer):
                if s.isna().any():
                    return Coerced(s, False, observed + " with nulls")
                return Coerced(s.astype("int64"), True, observed)
        elif logical is LogicalType.STRING:
            if isinstance(dtype, pd.StringDtype) or _is_arrow(dtype, pa.types.is_string):
                return Coerced(s if observed == "str" else s.astype("str"), True, observed)
            if is_object_dtype(dtype) and infer_dtype(s, skipna=True) in ("string", "empty"):
                return Coerced(s.astype("str"), True, observed)
        elif logical is LogicalType.BOOL:
            if isinstance(dtype, np.dtype) and dtype.kind == "b":
                return Coerced(s, True, observed)
            if (isinstance(dtype, pd.BooleanDtype) or _is_arrow(dtype, pa.types.is_boolean)) and (
                not s.isna().any()
            ):
                return Coerced(s.astype(bool), True, observed)
        elif logical is LogicalType.DATE:
            if isinstance(dtype, np.dtype) and dtype.kind == "M":
                return Coerced(s, True, observed)
            if _is_arrow(dtype, pa.types.is_date) or (
                is_object_dtype(dtype) and infer_dtype(s, skipna=True) in ("date", "empty")
            ):
                return Coerced(pd.to_datetime(s).astype("datetime64[s]"), True, observed)
        elif logical is LogicalType.TIMESTAMP:
            if isinstance(dtype, pd.DatetimeTZDtype):
                out = s.dt.tz_convert("UTC").dt.as_unit("us")
                return Coerced(out, True, observed)
            if _is_arrow(dtype, lambda t: pa.types.is_timestamp(t) and t.tz is not None):
                out = pd.to_datetime(s, utc=True).dt.as_unit("us")
                return Coerced(out, True, observed)
            # Naive timestamps are ambiguous by hours; the lake refuses them, so do we.
    except (TypeError, ValueError, OverflowError, pa.ArrowException):
        pass
    if is_object_dtype(dtype):
        observed = f"object ({infer_dtype(s, skipna=True)})"
    return Coerced(s, False, observed)
