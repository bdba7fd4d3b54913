"""Point-in-time market data for one day's decision, read from the lake.

Every read is ``as_of(known_at=decision_cutoff(day))``: the day's decision sees exactly
what had been published by the session's decision cutoff
(:func:`pipelines.timeline.decision_cutoff`, 20:00 exchange time), never a later price,
corporate action or restatement. Returns are total returns computed from raw closes and
the corporate actions known at the cutoff::

    r[t] = (close[t] · k[t] + D[t]) / close[t-1] − 1

with ``k`` the split ratio (new shares per old) and ``D`` the cash dividend on ex-date
``t`` (the vendor's own convention, see :mod:`pipelines.vendors.market`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.errors import AlphaFactoryError
from pipelines.lake.interface import Store
from pipelines.timeline import decision_cutoff


class NoMarketDataError(AlphaFactoryError, LookupError):
    """The lake holds no prices for the asked session as known at its cutoff."""


@dataclass(frozen=True)
class MarketSnapshot:
    """Wide panels (rows = sessions ≤ ``day``, columns = security ids) known at the cutoff.

    ``returns`` row ``t`` is the total return from ``t-1`` to ``t`` (NaN when unknown).
    ``sectors``/``shares`` are per security as known on ``day``; ``sentiment`` is wide
    like the prices (NaN where no news score).
    """

    day: dt.date
    known_at: dt.datetime
    close: pd.DataFrame
    volume: pd.DataFrame
    returns: pd.DataFrame
    sectors: pd.Series
    shares: pd.Series
    book_equity: pd.Series
    sentiment: pd.DataFrame

    @property
    def universe(self) -> list[str]:
        """Securities listed, with a sector and a close on ``day`` (sorted)."""
        if self.close.empty or pd.Timestamp(self.day) not in self.close.index:
            return []
        last = self.close.loc[pd.Timestamp(self.day)].to_numpy(dtype=float)
        ok = np.isfinite(last) & (last > 0)
        with_sector = set(self.sectors.index.tolist())
        ids = [str(s) for s in self.close.columns[ok].tolist() if s in with_sector]
        return sorted(ids)

    def last_close(self) -> pd.Series:
        """Each security's last close in the panel (``close.ffill().iloc[-1]``: NaN when
        it has none)."""
        if self.close.empty:
            return pd.Series(dtype=float)
        values = self.close.to_numpy(dtype=float)
        # The last row with a value per column (the last row when none: NaN there too).
        last = len(values) - 1 - np.argmax(~np.isnan(values[::-1]), axis=0)
        return pd.Series(
            values[last, np.arange(values.shape[1])],
            index=self.close.columns,
            name=self.close.index[-1],
        )

    def adv_shares(self, window: int = 20) -> pd.Series:
        """Mean daily volume (shares) over the last ``window`` sessions."""
        return self.volume.tail(window).mean()

    def volatility(self, window: int = 63) -> pd.Series:
        """Daily return standard deviation over the last ``window`` sessions."""
        return self.returns.tail(window).std(ddof=1)

    def market_cap(self) -> pd.DataFrame:
        """close × shares outstanding (shares as known on ``day``; a proxy from ADV when
        the security has no fundamentals yet)."""
        columns = self.close.columns
        shares = self.shares.reindex(columns).to_numpy(dtype=float, na_value=np.nan)
        proxy = self.volume.mean().reindex(columns).to_numpy(dtype=float, na_value=np.nan)
        # The frames share one grid: the product of their values is what pandas' aligned
        # ``close * shares`` computed, without its alignment machinery.
        shares = np.where(shares > 0, shares, proxy * 100.0)
        return pd.DataFrame(
            self.close.to_numpy(dtype=float) * shares, index=self.close.index, columns=columns
        )


@dataclass(frozen=True)
class _Keys:
    """A long table's (valid_date, security_id) keys as integers: ``days`` since the
    epoch per row, ``codes`` into ``names`` (the distinct security ids) per row, and
    ``complete``: the rows with both keys (``pivot_table`` drops the others)."""

    days: np.ndarray
    codes: np.ndarray
    names: np.ndarray
    complete: np.ndarray

    @classmethod
    def of(cls, table: pa.Table) -> _Keys:
        sec, day = table.column("security_id"), table.column("valid_date")
        complete = np.ones(table.num_rows, dtype=bool)
        if sec.null_count or day.null_count:
            complete = pc.and_(pc.is_valid(sec), pc.is_valid(day)).to_numpy(zero_copy_only=False)
            sec, day = sec.fill_null(""), day.fill_null(0)
        ids = pc.dictionary_encode(sec).combine_chunks()
        return cls(
            days=day.cast(pa.int32()).to_numpy(),
            codes=ids.indices.to_numpy(zero_copy_only=False).astype(np.int64),
            names=np.asarray(ids.dictionary.to_pylist(), dtype=object),
            complete=complete,
        )


@dataclass(frozen=True)
class _Grid:
    """The rows (sorted days) and columns (sorted ids) of a wide panel."""

    days: np.ndarray
    names: np.ndarray

    @classmethod
    def of(cls, keys: _Keys, values: np.ndarray) -> _Grid:
        """The dates and securities with at least one non-NaN value (``pivot_table``'s)."""
        ok = ~np.isnan(values) & keys.complete
        # np.unique's sorted distinct values, by counting (codes and days are small ints).
        codes = np.flatnonzero(np.bincount(keys.codes[ok], minlength=len(keys.names)))
        days = keys.days[ok]
        if len(days):
            first = days.min()
            days = (np.flatnonzero(np.bincount(days - first)) + first).astype(days.dtype)
        return cls(days=days, names=np.sort(keys.names[codes]))

    @cached_property
    def axes(self) -> tuple[pd.DatetimeIndex, pd.Index]:
        """The panel's index and columns, as ``pivot_table`` names and types them."""
        index = pd.DatetimeIndex(
            self.days.astype("datetime64[D]").astype("datetime64[s]"), name="valid_date"
        )
        return index, pd.Index(self.names.tolist(), dtype="str", name="security_id")

    def tail(self, n: int) -> _Grid:
        return _Grid(self.days[-n:] if n > 0 else self.days[:0], self.names)

    def frame(self, keys: _Keys, values: np.ndarray) -> pd.DataFrame:
        """``values`` laid on the grid; a key seen twice keeps its last non-NaN value,
        keys off the grid are dropped (``pivot_table(aggfunc="last")`` + ``reindex``)."""
        return self.frames(keys, values)[0]

    def frames(self, keys: _Keys, *columns: np.ndarray) -> list[pd.DataFrame]:
        """:meth:`frame` of each of ``columns`` (values of the same ``keys``), the keys'
        places on the grid found once."""
        cells = self._cells(keys)
        return [self._lay(cells, values) for values in columns]

    def _cells(self, keys: _Keys) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each key's row and column on the grid, and whether it is on it."""
        # Each key name's column: its position in the sorted names, -1 when absent.
        col_of = np.searchsorted(self.names, keys.names).astype(np.int64)
        if len(self.names):
            found = self.names[np.minimum(col_of, len(self.names) - 1)] == keys.names
            col_of[~found.astype(bool)] = -1
        else:
            col_of[:] = -1
        cols = col_of[keys.codes] if len(col_of) else np.full(len(keys.codes), -1, np.int64)
        rows = np.searchsorted(self.days, keys.days)
        inside = (rows < len(self.days)) & (cols >= 0) & keys.complete
        inside[inside] = self.days[rows[inside]] == keys.days[inside]
        return rows, cols, inside

    def _lay(
        self, cells: tuple[np.ndarray, np.ndarray, np.ndarray], values: np.ndarray
    ) -> pd.DataFrame:
        """``values`` (of the keys whose places are ``cells``) laid on the grid."""
        rows, cols, inside = cells
        on = inside & ~np.isnan(values)
        flat = rows[on] * len(self.names) + cols[on]
        vals = values[on]
        grid = np.full(len(self.days) * len(self.names), np.nan)
        if len(flat) < 2 or bool(np.all(flat[1:] > flat[:-1])):
            # Each key once, in order (a resolved read's rows: by date, then id): every
            # occurrence is the last, no dedup sort needed.
            grid[flat] = vals
        else:
            # Last occurrence of each key, in the table's row order.
            last = len(flat) - 1 - np.unique(flat[::-1], return_index=True)[1]
            grid[flat[last]] = vals[last]
        index, columns = self.axes
        # copy=False keeps the (dates × ids) row-major memory pivot_table leaves behind:
        # pandas' reductions over dates sum a strided axis sequentially but a contiguous
        # one pairwise, so the layout decides the last bits of e.g. ``adv_shares``.
        return pd.DataFrame(
            grid.reshape(len(self.days), len(self.names)),
            index=index,
            columns=columns,
            copy=False,
        )


def _floats(table: pa.Table, column: str) -> np.ndarray:
    """A numeric column as float64, null → NaN."""
    return np.asarray(
        table.column(column).cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=float
    )


def _wide(table: pa.Table, value: str) -> pd.DataFrame:
    """The long ``table``'s ``value`` as a (valid_date × security_id) panel, sorted."""
    keys = _Keys.of(table)
    values = _floats(table, value)
    return _Grid.of(keys, values).frame(keys, values)


def window_days(lookback: int) -> int:
    """Calendar days before a session that :func:`load_snapshot` reads for ``lookback``
    sessions (weekends and holidays included, with room to spare)."""
    return int(lookback * 1.5) + 10


def load_snapshot(lake: Store, day: dt.date, lookback: int = 130) -> MarketSnapshot:
    """Read the ``lookback`` sessions up to ``day`` as known at its decision cutoff."""
    known = decision_cutoff(day)
    start = day - dt.timedelta(days=window_days(lookback))
    prices = lake.as_of(
        "prices",
        known_at=known,
        valid_at=(start, day),
        columns=["security_id", "close", "volume"],
    )
    if prices.num_rows == 0:
        raise NoMarketDataError(
            f"no prices in the lake up to {day} as known at {known.isoformat()}"
        )
    # One set of integer keys for both panels, laid straight on the close's grid (the
    # dates and securities with a close), of which only the last sessions are kept.
    keys = _Keys.of(prices)
    closes = _floats(prices, "close")
    grid = _Grid.of(keys, closes).tail(lookback + 1)
    close, volume = grid.frames(keys, closes, _floats(prices, "volume"))
    returns = _total_returns(lake, close, known)
    sectors = _sectors(
        lake.as_of(
            "security_master",
            known_at=known,
            valid_at=day,
            columns=["security_id", "sector", "listed"],
        )
    )
    fund = lake.as_of(
        "fundamentals",
        known_at=known,
        valid_at=(day - dt.timedelta(days=730), day),
        columns=["security_id", "shares_outstanding", "book_equity"],
    )
    shares, book = _last_known(fund, ["shares_outstanding", "book_equity"])
    sent = lake.as_of(
        "sentiment",
        known_at=known,
        valid_at=(day - dt.timedelta(days=14), day),
        columns=["security_id", "sentiment"],
    )
    if sent.num_rows == 0:
        sentiment = pd.DataFrame(index=close.index[-1:], columns=close.columns, dtype=float)
    else:
        sentiment = _wide(sent, "sentiment")
    return MarketSnapshot(
        day=day,
        known_at=known,
        close=close,
        volume=volume,
        returns=returns,
        sectors=sectors,
        shares=shares,
        book_equity=book,
        sentiment=sentiment,
    )


def _total_returns(lake: Store, close: pd.DataFrame, known: dt.datetime) -> pd.DataFrame:
    """Total returns from raw closes and the corporate actions known at ``known``."""
    if close.empty:
        return close.copy()
    start, end = close.index[0].date(), close.index[-1].date()
    k = np.ones(close.shape)
    div = np.zeros(close.shape)
    actions = lake.as_of(
        "corporate_actions",
        known_at=known,
        valid_at=(start, end),
        columns=["security_id", "action_type", "ratio", "amount"],
    )
    if actions.num_rows:
        when = pd.DatetimeIndex(
            actions.column("valid_date").cast(pa.int32()).to_numpy().astype("datetime64[D]")
        )
        rows = close.index.get_indexer(when)
        ids = actions.column("security_id").to_numpy(zero_copy_only=False)
        cols = close.columns.get_indexer(pd.Index([str(i) for i in ids], dtype="str"))
        kind = np.asarray(actions.column("action_type").to_pylist(), dtype=object)
        ratio, amount = _finite_or_zero(actions, "ratio"), _finite_or_zero(actions, "amount")
        on = (rows >= 0) & (cols >= 0)
        split = on & (kind == "split") & (ratio != 0)
        dividend = on & (kind == "dividend") & (amount != 0)
        # ufunc.at applies repeated cells in row order, as the records were applied.
        np.multiply.at(k, (rows[split], cols[split]), ratio[split])
        np.add.at(div, (rows[dividend], cols[dividend]), amount[dividend])
    now = close.to_numpy(dtype=float)
    # close.shift(1), without pandas' reindexing of the frame.
    prev = np.empty_like(now)
    prev[:1] = np.nan
    prev[1:] = now[:-1]
    values = (now * k + div) / prev - 1.0
    return pd.DataFrame(values, index=close.index, columns=close.columns)


def _finite_or_zero(table: pa.Table, column: str) -> np.ndarray:
    """A numeric column as float64 with null and non-finite values as 0 (= no action)."""
    if column not in table.column_names:
        return np.zeros(table.num_rows)
    values = _floats(table, column)
    return np.where(np.isfinite(values), values, 0.0)


def _by_security(table: pa.Table) -> pa.Table:
    """``table``'s rows with a security id, ordered by security then valid date (a stable
    sort: rows of one security and date keep their order)."""
    if table.column("security_id").null_count:
        table = table.filter(pc.is_valid(table.column("security_id")))
    order = [("security_id", "ascending"), ("valid_date", "ascending")]
    return table.take(pc.sort_indices(table, order))


def _last_of_security(rows: pa.Table) -> np.ndarray:
    """For rows ordered by security: whether each is its security's last."""
    ids = rows.column("security_id")
    n = rows.num_rows
    last = np.ones(n, dtype=bool)
    if n > 1:
        same = pc.equal(ids.slice(1), ids.slice(0, n - 1))
        last[:-1] = ~same.to_numpy(zero_copy_only=False).astype(bool)
    return last


def _sectors(master: pa.Table) -> pd.Series:
    """Each listed security's sector in force on the day (its latest version with a
    sector), by security id: ``sort_values("valid_date").groupby("security_id").tail(1)``
    then the listed (null: listed) rows with a sector, computed in Arrow."""
    rows = _by_security(master) if master.num_rows else master
    if rows.num_rows:
        rows = rows.filter(_last_of_security(rows))
        listed = pc.fill_null(rows.column("listed"), True)
        rows = rows.filter(pc.and_(listed, pc.is_valid(rows.column("sector"))))
    if not rows.num_rows:
        return pd.Series([], index=[], dtype=object).sort_index()
    return pd.Series(
        np.asarray([str(x) for x in rows.column("sector").to_pylist()], dtype=object),
        index=np.asarray([str(x) for x in rows.column("security_id").to_pylist()], dtype=object),
        dtype=object,
    ).sort_index()


def _last_known(table: pa.Table, columns: list[str]) -> tuple[pd.Series, ...]:
    """Per column, each security's last non-null (and non-NaN) value in valid-date order,
    as float, by security id (``groupby("security_id").last()`` after a sort by valid
    date, without the pandas round trip). Rows of one security and date (two fiscal
    periods published the same day) count in the table's order."""
    if not table.num_rows:
        return tuple(pd.Series(dtype=float) for _ in columns)
    rows = _by_security(table)
    ids = rows.column("security_id")
    # Group numbers per row: a new group where the id changes.
    starts = np.ones(rows.num_rows, dtype=bool)
    if rows.num_rows > 1:
        starts[1:] = _last_of_security(rows)[:-1]
    group = np.cumsum(starts) - 1
    names = np.asarray(pc.take(ids, np.flatnonzero(starts)).to_pylist(), dtype=object)
    out = []
    for column in columns:
        values = _floats(rows, column)
        known = ~np.isnan(values)
        g, v = group[known], values[known]
        last = np.ones(len(g), dtype=bool)
        last[:-1] = g[1:] != g[:-1]
        index = pd.Index(names[g[last]].tolist(), dtype="str", name="security_id")
        out.append(pd.Series(v[last], index=index, name=column, dtype=float))
    return tuple(out)
