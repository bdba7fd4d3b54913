"""The point-in-time panel: the one input contract of features, labels and models.

A :class:`Panel` is a set of *wide* fields (rows = trading days, columns = security
ids) that share one date index and one security index. Every value at row ``t``
must be knowable at the close of ``t`` (:mod:`pipelines.pit.lake_panel` builds it from
the bitemporal lake as of each row's decision cutoff). Features, labels and splits only ever read rows
``<= t`` to produce something for ``t`` (labels read ``t + N`` but are only
*usable* from ``t + N`` on; see :mod:`pipelines.pit.labels`).

Standard fields (all float64 unless noted; NaN = unknown / not listed):

==========================  ==============================================
``close``                   raw close price
``adj_close``               split/dividend-adjusted close (as of the panel's as-of date)
``ret``                     daily total return, close(t-1) -> close(t)
``volume``                  shares traded
``dollar_volume``           close * volume
``shares_outstanding``      shares
``market_cap``              close * shares_outstanding
``book_equity``             latest reported book equity as of t
``net_income``              trailing-4-quarter net income as of t
``revenue``                 trailing-4-quarter revenue as of t
``total_assets``            latest reported total assets as of t
``operating_cash_flow``     trailing-4-quarter operating cash flow as of t
``sentiment``               alternative-data sentiment score
``sector``                  str sector code (object / string dtype)
``in_universe``             bool: tradable universe membership at t
==========================  ==============================================

Extra fields (new alt datasets) may be added under any other name; features
declare the fields they read and get a panel restricted to those
(:meth:`Panel.select`), so undeclared reads fail loudly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.errors import AlphaFactoryError

NUMERIC_FIELDS: tuple[str, ...] = (
    "close",
    "adj_close",
    "ret",
    "volume",
    "dollar_volume",
    "shares_outstanding",
    "market_cap",
    "book_equity",
    "net_income",
    "revenue",
    "total_assets",
    "operating_cash_flow",
    "sentiment",
)
SECTOR_FIELD = "sector"
UNIVERSE_FIELD = "in_universe"
STANDARD_FIELDS: tuple[str, ...] = (*NUMERIC_FIELDS, SECTOR_FIELD, UNIVERSE_FIELD)


class UndeclaredInputError(AlphaFactoryError, KeyError):
    """A feature read a panel field it did not declare in ``inputs``."""


@dataclass(frozen=True, eq=False)
class Panel:
    """Wide point-in-time fields sharing ``dates`` x ``securities``.

    ``fields`` maps a field name to a DataFrame indexed exactly by ``dates`` and
    with columns exactly ``securities``. ``cache`` holds derived intermediate
    arrays (e.g. the cap-weighted market return) shared by features computed on
    the *same* rows; slicing rows (:meth:`iloc`) starts a fresh cache so that a
    window never sees values derived from rows outside it.
    """

    dates: pd.DatetimeIndex
    securities: pd.Index
    fields: Mapping[str, pd.DataFrame]
    cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.dates.is_monotonic_increasing or not self.dates.is_unique:
            raise ValueError("panel dates must be strictly increasing")
        for name, frame in self.fields.items():
            if frame.shape != (len(self.dates), len(self.securities)):
                raise ValueError(f"field {name!r} has shape {frame.shape}, expected {self.shape}")

    # --- shape & access -------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.dates), len(self.securities))

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(self.fields)

    def field(self, name: str) -> pd.DataFrame:
        """The wide DataFrame of ``name``; :class:`UndeclaredInputError` if absent."""
        try:
            return self.fields[name]
        except KeyError:
            raise UndeclaredInputError(
                f"panel field {name!r} is not available (declared/loaded: {sorted(self.fields)})"
            ) from None

    def array(self, name: str) -> np.ndarray:
        """``field(name)`` as a (T, N) float64 ndarray (a view when possible; do not mutate)."""
        return self.field(name).to_numpy(dtype=np.float64, na_value=np.nan)

    def universe(self) -> np.ndarray:
        """(T, N) bool in-universe mask (missing = False)."""
        frame = self.field(UNIVERSE_FIELD)
        return frame.fillna(False).to_numpy(dtype=bool)

    def sector_codes(self) -> tuple[np.ndarray, pd.Index]:
        """Sector codes as (T, N) int16 (−1 = unknown) plus the code → sector index.

        Codes are only used for "same sector?" equality, so they may differ
        between two windows without changing any result.
        """
        cached = self.cache.get("_sector_codes")
        if cached is None:
            frame = self.field(SECTOR_FIELD)
            # one Arrow array in column-major order (one C++ conversion, then one hash pass;
            # a conversion per column cost ~3x more)
            values = frame.to_numpy(dtype=object).ravel(order="F")
            flat = pa.array(values, type=pa.string(), from_pandas=True)
            encoded = pc.dictionary_encode(flat)
            codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
            codes = codes.reshape(self.shape[1], self.shape[0]).T.astype(np.int16)
            cached = (np.ascontiguousarray(codes), pd.Index(encoded.dictionary.to_pylist()))
            self.cache["_sector_codes"] = cached
        return cached  # type: ignore[no-any-return]

    # standard fields as typed properties (read-only views of ``fields``)
    @property
    def close(self) -> pd.DataFrame:
        return self.field("close")

    @property
    def adj_close(self) -> pd.DataFrame:
        return self.field("adj_close")

    @property
    def ret(self) -> pd.DataFrame:
        return self.field("ret")

    @property
    def market_cap(self) -> pd.DataFrame:
        return self.field("market_cap")

    @property
    def sector(self) -> pd.DataFrame:
        return self.field(SECTOR_FIELD)

    @property
    def in_universe(self) -> pd.DataFrame:
        return self.field(UNIVERSE_FIELD)

    # --- slicing ---------------------------------------------------------------------
    def iloc(self, start: int, stop: int) -> Panel:
        """Rows ``[start, stop)`` (positions) as a new panel with a fresh cache."""
        start, stop = max(0, start), min(len(self.dates), stop)
        return Panel(
            dates=self.dates[start:stop],
            securities=self.securities,
            fields={k: v.iloc[start:stop] for k, v in self.fields.items()},
        )

    def window(self, end: pd.Timestamp | str, lookback: int) -> Panel:
        """Rows ``[end − lookback, end]`` in trading days (``lookback + 1`` rows at most)."""
        pos = self.position(end)
        return self.iloc(pos - lookback, pos + 1)

    def truncate(self, end: pd.Timestamp | str) -> Panel:
        """All rows with date ``<= end``."""
        return self.iloc(0, int(self.dates.searchsorted(pd.Timestamp(end), side="right")))

    def position(self, date: pd.Timestamp | str) -> int:
        """Row position of ``date``; KeyError when it is not a panel trading day."""
        loc = self.dates.get_loc(pd.Timestamp(date))
        if not isinstance(loc, int):
            raise KeyError(f"{date} is not a unique panel date")
        return loc

    def select(self, names: Iterable[str]) -> Panel:
        """The same rows restricted to ``names`` (sharing this panel's cache)."""
        wanted = list(dict.fromkeys(names))
        return Panel(
            dates=self.dates,
            securities=self.securities,
            fields={n: self.field(n) for n in wanted},
            cache=self.cache,
        )

    def replace_fields(self, **frames: pd.DataFrame) -> Panel:
        """A copy with some fields replaced or added (fresh cache)."""
        return Panel(self.dates, self.securities, {**self.fields, **frames})


def wide(values: np.ndarray, panel: Panel) -> pd.DataFrame:
    """Wrap a (T, N) array as a wide DataFrame on ``panel``'s axes."""
    return pd.DataFrame(values, index=panel.dates, columns=panel.securities, copy=False)


# --- long format ------------------------------------------------------------------------
def to_long_arrow(panel: Panel, fields: Sequence[str] | None = None) -> pa.Table:
    """The panel as a long Arrow table ``(date, security_id, *fields)``, row-major by date.

    Row ``t * N + i`` is (dates[t], securities[i]); all cells are kept, including
    NaN ones, so a SQL feature can decide what "missing" means. Strings
    (``security_id``, ``sector``) are dictionary-encoded to keep this cheap.
    """
    names = list(fields) if fields is not None else list(panel.field_names)
    n_dates, n_secs = panel.shape
    date_idx = np.repeat(np.arange(n_dates, dtype=np.int32), n_secs)
    sec_idx = np.tile(np.arange(n_secs, dtype=np.int32), n_dates)
    columns: dict[str, pa.Array] = {
        "date": pa.array(panel.dates.values.astype("datetime64[us]"))
        .take(pa.array(date_idx))
        .cast(pa.date32()),
        "security_id": pa.DictionaryArray.from_arrays(
            pa.array(sec_idx), pa.array(panel.securities.astype(str).to_numpy(dtype=object))
        ),
    }
    for name in names:
        frame = panel.field(name)
        if name == UNIVERSE_FIELD:
            columns[name] = pa.array(panel.universe().ravel())
        elif name == SECTOR_FIELD:
            codes, uniques = panel.sector_codes()
            flat = codes.ravel().astype(np.int32)
            columns[name] = pa.DictionaryArray.from_arrays(
                pa.array(flat, mask=flat < 0), pa.array(uniques.astype(str).to_numpy(dtype=object))
            )
        else:
            values = frame.to_numpy(dtype=np.float64, na_value=np.nan).ravel()
            columns[name] = pa.array(values, mask=np.isnan(values))
    return pa.table(columns)


def to_long_frame(panel: Panel, fields: Sequence[str] | None = None) -> pd.DataFrame:
    """:func:`to_long_arrow` as a pandas DataFrame (``date`` as datetime64)."""
    frame = to_long_arrow(panel, fields).to_pandas()
    frame["date"] = pd.to_datetime(frame["date"])
    frame["security_id"] = frame["security_id"].astype(str)
    return frame


def from_long(
    frame: pd.DataFrame | pa.Table,
    panel: Panel,
    value: str = "value",
) -> pd.DataFrame:
    """Pivot a long ``(date, security_id, value)`` table back onto ``panel``'s wide axes.

    Rows outside the panel axes are dropped; (date, security) cells not present
    are NaN. Duplicate keys are an error (a SQL feature must return one row per cell).
    """
    table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame)
    # dates: compare as integer days (fast, exact for date32 / midnight timestamps)
    day = np.timedelta64(1, "D")
    date_col = table.column("date")
    if pa.types.is_date32(date_col.type):
        days = date_col.cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.int64)
    else:
        stamps = pd.DatetimeIndex(date_col.to_pandas()).values
        days = (stamps.astype("datetime64[D]") - np.datetime64(0, "D")) // day
    panel_days = (panel.dates.values.astype("datetime64[D]") - np.datetime64(0, "D")) // day
    pos = np.minimum(np.searchsorted(panel_days, days), len(panel_days) - 1)
    rows = np.where(panel_days[pos] == days, pos, -1)
    # securities: hash-encode in Arrow, then map the (small) dictionary onto the panel columns
    sec_col = table.column("security_id").cast(pa.string()).combine_chunks()
    encoded = pc.dictionary_encode(sec_col)
    lookup = pd.Index(panel.securities.astype(object)).get_indexer(
        pd.Index(encoded.dictionary.to_pylist(), dtype=object)
    )
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    cols = lookup[codes] if len(lookup) else np.full(len(codes), -1)
    vals = table.column(value).cast(pa.float64()).to_numpy(zero_copy_only=False)
    keep = (rows >= 0) & (cols >= 0)
    rows, cols, vals = rows[keep], cols[keep], vals[keep]
    flat = rows.astype(np.int64) * len(panel.securities) + cols
    if len(flat) and np.bincount(flat).max() > 1:
        raise ValueError("long table has duplicate (date, security_id) rows")
    out = np.full(panel.shape, np.nan)
    out.ravel()[flat] = vals
    return wide(out, panel)
