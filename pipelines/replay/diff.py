"""Bit-for-bit comparison of a stored artefact with its replay: None, or the first difference.

Floats are compared by their bits (``float.hex``: ``-0.0`` differs from ``0.0``, a NaN
equals a NaN), arrays by dtype, shape and bytes, frames cell by cell in row order, objects
field by field. Wall-clock timings (``solve_time``, ``solver_time``: how long a solve
took, not what it decided) and the lake's bookkeeping columns (``_ingested_at``,
``_batch_id``) are not part of a decision and are skipped.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

#: Fields measuring how long something took, not what was decided.
TIMING_FIELDS = frozenset({"solve_time", "solver_time"})
#: The lake's bookkeeping columns: when and in which batch a row was written.
BOOKKEEPING_COLUMNS = frozenset({"_ingested_at", "_batch_id"})
_MAX_VALUE = 120


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"


def _same_float(a: float, b: float) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    return float(a).hex() == float(b).hex()


def first_difference(stored: Any, replayed: Any, path: str = "") -> str | None:
    """Where ``stored`` and ``replayed`` first differ (``path: stored … != replayed …``),
    or None when they are bit-identical (timings skipped, see module doc)."""
    here = path or "value"
    if isinstance(stored, pd.DataFrame) and isinstance(replayed, pd.DataFrame):
        return _frame_difference(stored, replayed, here)
    if isinstance(stored, pd.Series) and isinstance(replayed, pd.Series):
        return _frame_difference(stored.to_frame(), replayed.to_frame(), here)
    if isinstance(stored, pd.Index) and isinstance(replayed, pd.Index):
        return first_difference(list(stored), list(replayed), here)
    if isinstance(stored, np.ndarray) and isinstance(replayed, np.ndarray):
        return _array_difference(stored, replayed, here)
    if type(stored) is not type(replayed) and not (
        isinstance(stored, float | int | np.number)
        and isinstance(replayed, float | int | np.number)
    ):
        return f"{here}: stored {_short(stored)} != replayed {_short(replayed)} (types differ)"
    if dataclasses.is_dataclass(stored) and not isinstance(stored, type):
        for f in dataclasses.fields(stored):
            if f.name in TIMING_FIELDS:
                continue
            found = first_difference(
                getattr(stored, f.name), getattr(replayed, f.name), f"{path}.{f.name}".lstrip(".")
            )
            if found:
                return found
        return None
    if hasattr(stored, "model_dump") and hasattr(replayed, "model_dump"):
        return first_difference(stored.model_dump(), replayed.model_dump(), path)
    if isinstance(stored, Mapping):
        keys = [k for k in stored if k not in TIMING_FIELDS]
        other = [k for k in replayed if k not in TIMING_FIELDS]
        if set(map(str, keys)) != set(map(str, other)):
            only = sorted(set(map(str, keys)) ^ set(map(str, other)))
            return f"{here}: keys differ: {_short(only)}"
        for k in keys:
            found = first_difference(stored[k], replayed[k], f"{path}[{k!r}]")
            if found:
                return found
        return None
    if isinstance(stored, Sequence) and not isinstance(stored, str | bytes):
        if len(stored) != len(replayed):
            return f"{here}: stored {len(stored)} items != replayed {len(replayed)}"
        for i, (a, b) in enumerate(zip(stored, replayed, strict=True)):
            found = first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        return None
    if isinstance(stored, float | np.floating) or isinstance(replayed, float | np.floating):
        if _same_float(float(stored), float(replayed)):
            return None
        return f"{here}: stored {float(stored)!r} != replayed {float(replayed)!r}"
    if _missing(stored) and _missing(replayed):
        return None
    try:
        same = bool(stored == replayed)
    except (TypeError, ValueError):
        same = False
    return None if same else f"{here}: stored {_short(stored)} != replayed {_short(replayed)}"


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _array_difference(a: np.ndarray, b: np.ndarray, here: str) -> str | None:
    if a.dtype != b.dtype or a.shape != b.shape:
        return f"{here}: stored {a.dtype}{a.shape} != replayed {b.dtype}{b.shape}"
    if a.dtype.kind == "O":
        return first_difference(a.tolist(), b.tolist(), here)
    if np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes():
        return None
    if a.dtype.kind == "f":
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        same &= np.signbit(a) == np.signbit(b)
    else:
        same = a == b
    where = tuple(int(i) for i in np.argwhere(~same)[0]) if (~same).any() else ()
    if not where:  # NaN payloads differ: the bits, not the values
        return f"{here}: stored and replayed bytes differ (NaN payloads)"
    return f"{here}{list(where)}: stored {a[where].item()!r} != replayed {b[where].item()!r}"


def _frame_difference(a: pd.DataFrame, b: pd.DataFrame, here: str) -> str | None:
    if list(a.columns) != list(b.columns):
        only = sorted(set(map(str, a.columns)) ^ set(map(str, b.columns)))
        return f"{here}: columns differ: {_short(only or [list(a.columns), list(b.columns)])}"
    if len(a) != len(b):
        return f"{here}: stored {len(a)} rows != replayed {len(b)} rows"
    found = first_difference(list(a.index), list(b.index), f"{here}.index")
    if found:
        return found
    for col in a.columns:
        if str(a[col].dtype) != str(b[col].dtype):
            return f"{here}[{col!r}]: dtype stored {a[col].dtype} != replayed {b[col].dtype}"
        left, right = a[col].to_numpy(), b[col].to_numpy()
        for i in range(len(a)):
            found = first_difference(left[i], right[i], f"{here}[{a.index[i]!r}, {col!r}]")
            if found:
                return found
    return None


def _same_column(a: pd.Series, b: pd.Series) -> bool:
    """Whether two columns hold the same values bit for bit (NaN equal to NaN)."""
    if str(a.dtype) != str(b.dtype):
        return False
    left, right = a.to_numpy(), b.to_numpy()
    if left.dtype.kind in "fiub" and right.dtype.kind in "fiub":
        # Same bytes: identical. Otherwise the caller looks cell by cell (NaN payloads may
        # differ where no value does).
        return np.ascontiguousarray(left).tobytes() == np.ascontiguousarray(right).tobytes()
    return all(first_difference(x, y) is None for x, y in zip(left, right, strict=True))


def rows_difference(
    stored: pd.DataFrame, replayed: pd.DataFrame, key: Sequence[str], what: str
) -> str | None:
    """The first difference between two sets of lake rows matched on ``key`` (a row in one
    only, or the first differing column of the first differing row), bookkeeping columns
    skipped; None when identical."""
    skip = BOOKKEEPING_COLUMNS | TIMING_FIELDS
    cols = [c for c in stored.columns if c not in skip]
    if sorted(cols) != sorted(c for c in replayed.columns if c not in skip):
        return f"{what}: columns differ"
    a = stored[cols].sort_values(list(key)).reset_index(drop=True)
    b = replayed[cols].sort_values(list(key)).reset_index(drop=True)
    ka = [tuple(r) for r in a[list(key)].itertuples(index=False)]
    kb = [tuple(r) for r in b[list(key)].itertuples(index=False)]
    if ka != kb:
        only_stored = sorted(set(ka) - set(kb))
        only_replayed = sorted(set(kb) - set(ka))
        if only_stored:
            return f"{what}: stored row {dict(zip(key, only_stored[0], strict=True))} not replayed ({len(only_stored)} such)"
        if only_replayed:
            return f"{what}: replayed row {dict(zip(key, only_replayed[0], strict=True))} not stored ({len(only_replayed)} such)"
        return f"{what}: stored {len(ka)} rows != replayed {len(kb)} rows"
    # Whole columns first (vectorized); cell by cell only in a column that differs.
    for col in cols:
        if _same_column(a[col], b[col]):
            continue
        for i in range(len(a)):
            found = first_difference(a[col].iat[i], b[col].iat[i], col)
            if found:
                where = dict(zip(key, ka[i], strict=True))
                return f"{what} {where}: {found}"
    return None


__all__ = ["BOOKKEEPING_COLUMNS", "TIMING_FIELDS", "first_difference", "rows_difference"]
