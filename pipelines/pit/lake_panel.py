"""Build the point-in-time :class:`Panel` from the bitemporal lake.

Row ``t`` of the panel holds what was known at the research cutoff of session ``t``
(:func:`pipelines.timeline.decision_cutoff`), capped by an optional global ``known_at``:

* ``close``/``volume``: the latest price version known then;
* ``adj_close = close × F[t]`` where ``F[t]`` is the product, in ex-date order, of every
  corporate-action factor with ex-date ``<= t`` known at cutoff(t) — a split ratio ``k``, a
  dividend ``1 + D / close_ex`` — so ``adj_close[t] / adj_close[t−1] − 1`` is the total
  return, and an action announced after ``t`` can never change row ``t``. ``F`` is anchored
  at the start of the lake's history, not of the panel, so any window of sessions gets the
  same bits;
* ``ret[t] = adj_close[t] / adj_close[t−1] − 1`` (NaN when either close is missing);
* fundamentals: the latest version of each fiscal period known then; balance-sheet items
  from the latest period, trailing-four-quarter flows (USD); shares outstanding rolled
  forward by the splits since the period end;
* ``sector`` and listing status: the security-master state in force at ``t`` as known then;
* ``sentiment``: the day's score when published by the cutoff.

With ``view`` = a session's cutoff (what that session's research stages read), every row's
price is the latest version known at ``view`` instead: the corrections of earlier days and
the prints that came after their own session's cutoff, as the live loop's snapshot sees
them; :mod:`pipelines.pit.history` gives every session of a range its own view, cheaply.

The slowly changing state (actions, security master, fundamentals) at each of its change
points comes from one bitemporal SQL query, ``sql/pit/panel.sql`` (DuckDB over the Delta
tables' ``to_pyarrow_dataset()``); the latest price and sentiment version of each cell, the
as-of join of the cells to that state and the universe rule are vectorized here (Arrow and
numpy: the same rows as the SQL joins gave, for about half the CPU of a training history).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from pipelines.errors import AlphaFactoryError
from pipelines.lake import Lake
from pipelines.pit.ops import rolling_count, rolling_mean
from pipelines.pit.panel import Panel
from pipelines.sql_files import load_sql
from pipelines.timeline import LATEST, decision_cutoffs, trading_calendar

INPUT_TABLES: tuple[str, ...] = (
    "prices",
    "corporate_actions",
    "security_master",
    "fundamentals",
    "sentiment",
)


@runtime_checkable
class DateSlices(Protocol):
    """A lake that can hand out an input table's rows of a ``valid_date`` range without
    scanning the rest (:class:`pipelines.backtest.retrain.ScannedInputs`)."""

    def rows_between(self, name: str, start: dt.date, end: dt.date) -> ds.Dataset | None:
        """Every row of input table ``name`` with ``valid_date`` in ``[start, end]``, in
        the order :meth:`Lake.dataset` scans them; None when it cannot tell them apart
        cheaply (the caller then filters the whole table)."""
        ...


@runtime_checkable
class ExDatePrices(Protocol):
    """A lake that keeps apart the price rows dated on a dividend's ex-date, for its life
    (:class:`pipelines.backtest.retrain.ScannedInputs`): all that ``sql/pit/panel.sql``
    reads of ``prices`` (the ex-date close of each dividend factor)."""

    def ex_date_prices(self) -> ds.Dataset | None:
        """Every version of every ``prices`` row whose ``(security_id, valid_date)`` is
        the ex-date of some version of a dividend in ``corporate_actions`` (at least those
        rows: a query that semi-joins them to its dividends gets the same answer), in the
        order :meth:`Lake.dataset` scans them; None when it cannot tell them apart."""
        ...


def _rows_between(lake: Lake, name: str, start: dt.date, end: dt.date) -> ds.Dataset:
    """Input table ``name`` narrowed to ``valid_date`` in ``[start, end]`` when ``lake``
    can do that cheaply (:class:`DateSlices`), else the whole table: a reader that filters
    to that range itself gets the same rows in the same order either way."""
    if isinstance(lake, DateSlices):
        narrowed = lake.rows_between(name, start, end)
        if narrowed is not None:
            return narrowed
    return lake.dataset(name)


#: The lake tables each panel field is built from, for a value to exist at all: a field
#: whose tables hold nothing known at a cutoff is all-null in every panel read then (a
#: vendor that delivers no fundamentals gives no ``market_cap``). Corporate actions are
#: not listed: they only adjust closes and roll shares forward (no action = factor 1), so a
#: lake without them still has ``adj_close`` and ``ret``. ``in_universe`` needs the security
#: master because membership requires "listed" as the master states it.
FIELD_TABLES: Mapping[str, tuple[str, ...]] = {
    "close": ("prices",),
    "adj_close": ("prices",),
    "ret": ("prices",),
    "volume": ("prices",),
    "dollar_volume": ("prices",),
    "adv_21d": ("prices",),
    "shares_outstanding": ("fundamentals",),
    "market_cap": ("prices", "fundamentals"),
    "book_equity": ("fundamentals",),
    "net_income": ("fundamentals",),
    "revenue": ("fundamentals",),
    "total_assets": ("fundamentals",),
    "operating_cash_flow": ("fundamentals",),
    "sentiment": ("sentiment",),
    "sector": ("security_master",),
    "in_universe": ("prices", "security_master"),
}
#: Sessions of history before the first loaded session whose slowly changing facts are
#: resolved individually (older ones collapse onto that session, which is exact for
#: everything but rolling pre-window fundamentals' shares forward over older splits).
HISTORY_SESSIONS = 756


class EmptyPanelError(AlphaFactoryError, ValueError):
    """A panel was asked for a date range without a trading session."""


@dataclass(frozen=True)
class UniverseRule:
    """Universe membership at ``t``: listed (per the master as known then), priced, liquid.

    ``min_price`` on the raw close; ``min_adv`` on the mean dollar volume over the last
    ``adv_window`` sessions, which needs at least ``min_history`` priced sessions in that
    window (so a fresh listing seasons for a few weeks first).
    """

    min_price: float = 2.0
    min_adv: float = 1e6
    adv_window: int = 21
    min_history: int = 15

    @property
    def warmup(self) -> int:
        """Sessions needed before a row for its membership to be exact (window + one return)."""
        return self.adv_window + 1


DEFAULT_RULE = UniverseRule()


def _calendar(
    first: dt.date, end: dt.date, view: dt.datetime | None = None, facts_at_view: bool = True
) -> pa.Table:
    """The sessions ``[first, end]`` with their cutoffs and the knowledge time their prices
    are read at (``px_cutoff``): the later of the row's own cutoff and ``view``; their
    corporate actions and sentiment (``fact_cutoff``) likewise, or at the row's own cutoff
    without ``facts_at_view``."""
    days = trading_calendar().sessions(first, end)
    cutoffs = decision_cutoffs(days)
    px = cutoffs if view is None else [max(c, view) for c in cutoffs]
    stamp = pa.timestamp("us", tz="UTC")
    return pa.table(
        {
            "d": pa.array(days, pa.date32()),
            "cutoff": pa.array(cutoffs, stamp),
            "px_cutoff": pa.array(px, stamp),
            "fact_cutoff": pa.array(px if facts_at_view else cutoffs, stamp),
        }
    )


def _history_start(start: dt.date) -> dt.date:
    # Up to HISTORY_SESSIONS before the start, or from the calendar's start for early history.
    calendar = trading_calendar()
    return calendar.sessions(calendar.start, start)[-HISTORY_SESSIONS:][0]


def _query(
    lake: Lake,
    sql: str,
    calendar: pa.Table,
    params: Mapping[str, object],
    narrow: Mapping[str, tuple[dt.date, dt.date]] | None = None,
    tables: Mapping[str, ds.Dataset] | None = None,
) -> pa.Table:
    """Run ``sql/<sql>`` over the input tables and ``calendar`` (:func:`_calendar`); a
    table in ``narrow`` holds only its rows of that ``valid_date`` range (for a query that
    reads no other row of it: :func:`_rows_between`), one in ``tables`` the rows given
    there (the rows of it the query reads, or more)."""
    import duckdb

    # one thread: these queries are small and the run is CPU-bound, so parallel workers
    # only add scheduling and merge work (~10% more CPU for the same rows)
    con = duckdb.connect(config={"threads": 1})
    # no progress bar: a query over two seconds (a loaded machine) drew one on stdout
    con.execute("SET enable_progress_bar = false")
    try:
        for name in INPUT_TABLES:
            table = (tables or {}).get(name)
            if table is None:
                span = (narrow or {}).get(name)
                table = lake.dataset(name) if span is None else _rows_between(lake, name, *span)
            con.register(name, table)
        con.register("cal", calendar)
        # ASOF joins against the small calendar: the merge operator, not a loop + arg_min
        con.execute("SET asof_loop_join_threshold = 0")
        rows: pa.Table = con.sql(load_sql(sql), params=dict(params)).to_arrow_table()
        return rows
    finally:
        con.close()


def _latest_versions(
    lake: Lake,
    name: str,
    values: tuple[str, ...],
    window: tuple[dt.date, dt.date, dt.datetime],
    calendar: pa.Table,
    cutoff: str,
) -> pa.Table:
    """The latest version of each ``(security_id, valid_date)`` cell of input table ``name``
    on the sessions of ``calendar`` in ``window`` = ``(start, end, known_at)``, known by
    ``known_at`` and by the session's ``cutoff`` column: ``security_id``, ``d``
    (the session), ``values`` and ``_deleted``. Latest = the largest ``(known_at,
    _ingested_at, _batch_id)``, as ``sql/lake`` resolves versions.

    Arrow and numpy rather than SQL: nearly every cell has one version, and DuckDB's
    window (or arg_max aggregate) over the ~450k cells of a training history cost ~1 s."""
    import pyarrow.compute as pc

    stamp = pa.timestamp("us", tz="UTC")
    start, end, known_at = window
    wanted = (
        (pc.field("valid_date") >= pa.scalar(start, pa.date32()))
        & (pc.field("valid_date") <= pa.scalar(end, pa.date32()))
        & (pc.field("known_at") <= pa.scalar(known_at, stamp))
    )
    meta = ["known_at", "_ingested_at", "_batch_id"]
    columns = ["security_id", "valid_date", *values, "_deleted", *meta]
    rows = _rows_between(lake, name, start, end).to_table(columns=columns, filter=wanted)
    sessions = _int_column(calendar.column("d").cast(pa.int32()))
    cutoffs = _int_column(calendar.column(cutoff).cast(stamp).cast(pa.int64()))
    days = _int_column(rows.column("valid_date").cast(pa.int32()))
    pos = np.minimum(np.searchsorted(sessions, days), max(len(sessions) - 1, 0))
    known = _int_column(rows.column("known_at").cast(stamp).cast(pa.int64()))
    ok = (sessions[pos] == days) & (known <= cutoffs[pos]) if len(sessions) else days < 0
    rows, pos = rows.filter(pa.array(ok)), pos[ok]
    ids = pc.dictionary_encode(rows.column("security_id").combine_chunks())
    codes = ids.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    key = codes * max(len(sessions), 1) + pos
    counts = np.bincount(key, minlength=1) if len(key) else np.zeros(1, dtype=np.int64)
    versioned = counts[key] > 1
    keep = ~versioned
    if versioned.any():
        # the few cells with several versions: the first of each in (cell, newest first) order
        idx = np.nonzero(versioned)[0]
        sub = rows.select(meta).take(pa.array(idx)).append_column("key", pa.array(key[idx]))
        order = pc.sort_indices(
            sub, [("key", "ascending")] + [(m, "descending") for m in meta]
        ).to_numpy()
        ordered = key[idx][order]
        first = np.r_[True, ordered[1:] != ordered[:-1]]
        keep[idx[order[first]]] = True
    rows = rows.filter(pa.array(keep))
    out = {
        "security_id": rows.column("security_id"),
        "d": rows.column("valid_date"),
        **{v: rows.column(v) for v in values},
        "_deleted": rows.column("_deleted"),
    }
    return pa.table(out)


def _int_column(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.int64)


def load_panel_rows(
    lake: Lake,
    start: dt.date,
    end: dt.date,
    known_at: dt.datetime | None = None,
    view: dt.datetime | None = None,
    any_version: bool = False,
    facts_at_view: bool = True,
) -> pa.Table:
    """The long point-in-time rows for sessions ``[start, end]``: one per price cell, with
    the state of ``sql/pit/panel.sql`` in force at its session (module docstring).

    Prices, corporate actions and sentiment are read as known at each row's own cutoff, or
    at ``view`` when later (the history as known at one session); ``facts_at_view=False``
    keeps actions and sentiment as first known at each row's cutoff (the first-print cells
    of :mod:`pipelines.pit.history`); ``any_version`` keeps retracted price cells with
    ``present`` = False. Rows in no particular order.
    """
    import pyarrow.compute as pc

    known = known_at or LATEST
    calendar = _calendar(_history_start(start), end, view, facts_at_view)
    window = (start, end, known)
    px = _latest_versions(lake, "prices", ("close", "volume"), window, calendar, "px_cutoff")
    if not any_version:
        px = px.filter(pc.invert(px.column("_deleted")))
    se = _latest_versions(lake, "sentiment", ("sentiment",), window, calendar, "fact_cutoff")
    se = se.filter(pc.invert(se.column("_deleted")))
    # panel.sql reads prices only on dividends' ex-dates (ex_close): from a lake that keeps
    # those rows apart, not a scan of every price row of the history (~0.15 s a read)
    tables = {}
    if isinstance(lake, ExDatePrices):
        ex_rows = lake.ex_date_prices()
        if ex_rows is not None:
            tables["prices"] = ex_rows
    params = {"end": end, "known_at": known}
    state = _query(lake, "pit/panel.sql", calendar, params, tables=tables)
    return _panel_rows(px, se, state)


def _cell_keys(ids: pa.ChunkedArray, days: pa.ChunkedArray, secs: pa.Array) -> np.ndarray:
    """One sortable int64 per (security, day): the security's position in ``secs`` (-1 when
    absent) in the high 32 bits, the day in the low ones."""
    import pyarrow.compute as pc

    code = pc.index_in(ids, value_set=secs).to_numpy(zero_copy_only=False)
    code = np.where(np.isnan(code), -1, code).astype(np.int64)
    day = _int_column(days.cast(pa.int32())) + 2**31
    return np.asarray((code << 32) | day, dtype=np.int64)


def _panel_rows(px: pa.Table, se: pa.Table, state: pa.Table) -> pa.Table:
    """Each price cell of ``px`` with the ``state`` row of its security's latest change
    point on or before its session (an as-of join) and its ``se`` sentiment, computed as
    the SQL the panel rows used to come from (three-valued ``listed``, NULL when no state)."""
    import pyarrow.compute as pc

    secs = pc.unique(px.column("security_id").combine_chunks())
    px_key = _cell_keys(px.column("security_id"), px.column("d"), secs)
    st_key = _cell_keys(state.column("security_id"), state.column("p"), secs)
    st_order = np.argsort(st_key, kind="stable")
    st_sorted = st_key[st_order]
    j = np.searchsorted(st_sorted, px_key, side="right") - 1
    at = np.maximum(j, 0)
    hit = (j >= 0) & (st_sorted[at] >> 32 == px_key >> 32) if len(st_sorted) else px_key < 0
    st = state.take(pa.array(st_order[at] if len(st_sorted) else at, mask=~hit))
    se_key = _cell_keys(se.column("security_id"), se.column("d"), secs)
    se_order = np.argsort(se_key, kind="stable")
    se_sorted = se_key[se_order]
    k = np.minimum(np.searchsorted(se_sorted, px_key), max(len(se_sorted) - 1, 0))
    found = (se_sorted[k] == px_key) if len(se_sorted) else px_key < 0
    sentiment = se.column("sentiment").take(
        pa.array(se_order[k] if len(se_sorted) else k, mask=~found)
    )

    f64 = pa.float64()
    day = px.column("d")
    split = pc.coalesce(st.column("split_factor"), pa.scalar(1.0, f64))
    list_date, delist_date = st.column("list_date"), st.column("delist_date")
    listed = pc.and_kleene(
        pc.and_kleene(
            st.column("listed"),
            pc.or_kleene(pc.is_null(list_date), pc.less_equal(list_date, day)),
        ),
        pc.or_kleene(pc.is_null(delist_date), pc.greater(delist_date, day)),
    )
    shares = pc.divide(
        pc.multiply(st.column("shares_q"), split),
        pc.coalesce(st.column("split_at_period"), pa.scalar(1.0, f64)),
    )
    return pa.table(
        {
            "security_id": px.column("security_id"),
            "date": day,
            "close": px.column("close"),
            "volume": px.column("volume"),
            "present": pc.invert(px.column("_deleted")),
            "adj_factor": pc.coalesce(st.column("adj_factor"), pa.scalar(1.0, f64)),
            "split_factor": split,
            "listed": listed,
            "sector": st.column("sector"),
            "book_equity": st.column("book_equity"),
            "total_assets": st.column("total_assets"),
            "net_income": st.column("net_income"),
            "revenue": st.column("revenue"),
            "operating_cash_flow": st.column("operating_cash_flow"),
            "shares_outstanding": shares,
            "sentiment": sentiment,
        }
    )


def load_price_revisions(
    lake: Lake, start: dt.date, end: dt.date, known_at: dt.datetime | None = None
) -> pa.Table:
    """Every version of the price cells in ``[start, end]`` published after their session's
    cutoff (``sql/pit/price_revisions.sql``), in as-of order."""
    params = {"start": start, "end": end, "known_at": known_at or LATEST}
    # the query reads no price row outside [start, end]
    narrow = {"prices": (start, end)}
    return _query(lake, "pit/price_revisions.sql", _calendar(start, end), params, narrow)


def load_late_facts(
    lake: Lake, start: dt.date, end: dt.date, known_at: dt.datetime | None = None
) -> pa.Table:
    """Corporate actions (valid by ``end``) and sentiment (valid in ``[start, end]``) known
    by ``known_at`` and published after their own session's cutoff: one row per distinct
    ``(security_id, first_day, seen_day)`` — the first session it changes (its valid
    session, or the calendar's first) and the first session whose cutoff knows it (only
    when later) — ordered by ``seen_day``, ``first_day``, ``security_id``.

    A fact's first session is the first calendar session on or after its valid date, the
    session that knows it the first whose cutoff is at or after its ``known_at``; facts
    past the calendar's last session (or cutoff) have none and are left out. Arrow and
    numpy: two binary searches per fact, not the two as-of joins over every sentiment
    row of the SQL this replaced (~3x the CPU)."""
    import pyarrow.compute as pc

    stamp = pa.timestamp("us", tz="UTC")
    known = pa.scalar(known_at or LATEST, stamp)
    calendar = _calendar(start, end)
    sessions = _int_column(calendar.column("d").cast(pa.int32()))
    cutoffs = _int_column(calendar.column("cutoff").cast(stamp).cast(pa.int64()))
    columns = ["security_id", "valid_date", "known_at"]
    last = pc.field("valid_date") <= pa.scalar(end, pa.date32())
    first = pc.field("valid_date") >= pa.scalar(start, pa.date32())
    ids, first_day, seen_day = [], [], []
    for name, wanted in (
        ("corporate_actions", last & (pc.field("known_at") <= known)),
        ("sentiment", first & last & (pc.field("known_at") <= known)),
    ):
        # sentiment: only its rows valid in [start, end] (corporate actions: every one by end)
        if name == "sentiment":
            source = _rows_between(lake, name, start, end)
        else:
            source = lake.dataset(name)
        rows = source.to_table(columns=columns, filter=wanted)
        days = _int_column(rows.column("valid_date").cast(pa.int32()))
        stamps = _int_column(rows.column("known_at").cast(stamp).cast(pa.int64()))
        s = np.searchsorted(sessions, days, side="left")  # first session on or after
        k = np.searchsorted(cutoffs, stamps, side="left")  # first cutoff that knows it
        keep = (s < len(sessions)) & (k < len(sessions)) & (k > s)
        idx = np.nonzero(keep)[0]
        ids.append(rows.column("security_id").take(pa.array(idx)).cast(pa.string()))
        first_day.append(sessions[s[idx]])
        seen_day.append(sessions[k[idx]])
    facts = pa.table(
        {
            "security_id": pa.chunked_array(
                [c for chunked in ids for c in chunked.chunks], pa.string()
            ),
            "first_day": pa.array(np.concatenate(first_day).astype(np.int32)).cast(pa.date32()),
            "seen_day": pa.array(np.concatenate(seen_day).astype(np.int32)).cast(pa.date32()),
        }
    )
    facts = facts.group_by(["security_id", "first_day", "seen_day"]).aggregate([])
    order = [("seen_day", "ascending"), ("first_day", "ascending"), ("security_id", "ascending")]
    return facts.select(["security_id", "first_day", "seen_day"]).sort_by(order)


#: Fields of a panel row that corporate actions and sentiment set: what a late folder's
#: facts revise in the research history (:mod:`pipelines.pit.history`).
FACT_FLOATS: tuple[str, ...] = ("adj_factor", "shares_outstanding", "sentiment")

#: The float fields a panel row carries from the lake (everything else is derived).
RAW_FLOATS: tuple[str, ...] = (
    "close",
    "volume",
    "adj_factor",
    "shares_outstanding",
    "book_equity",
    "net_income",
    "revenue",
    "total_assets",
    "operating_cash_flow",
    "sentiment",
)


@dataclass(frozen=True)
class RawCells:
    """The panel's lake values on ``days`` x ``secs`` (wide arrays), before derivation.

    ``present`` marks the cells with a price row (a retracted or not yet known price has
    none: every field of such a cell is unknown).
    """

    days: pd.DatetimeIndex
    secs: pd.Index
    floats: Mapping[str, np.ndarray]
    listed: np.ndarray
    sector: np.ndarray
    present: np.ndarray

    @classmethod
    def from_rows(cls, table: pa.Table, days: pd.DatetimeIndex) -> RawCells:
        """The cells of the long rows ``table`` (any row order) on ``days``: securities are
        the ids in ``table``, sorted."""
        import pyarrow.compute as pc

        # Arrow straight to numpy, no pandas frame of the rows (its object columns cost
        # more than the placement itself)
        sec_col = table.column("security_id").combine_chunks()
        secs = pd.Index(sorted(pc.unique(sec_col).to_pylist()), dtype=object)
        i = pc.index_in(sec_col, value_set=pa.array(secs.to_numpy(), sec_col.type))
        i = i.to_numpy(zero_copy_only=False).astype(np.int64)
        day = np.datetime64(0, "D")
        row_days = table.column("date").cast(pa.date32()).cast(pa.int32()).to_numpy()
        all_days = (days.values.astype("datetime64[D]") - day).astype(np.int64)
        pos = np.minimum(np.searchsorted(all_days, row_days), max(len(all_days) - 1, 0))
        t = np.where(all_days[pos] == row_days, pos, -1) if len(all_days) else pos - 1
        shape = (len(days), len(secs))
        # one flat cell index for every field (as ``out[t, i]``: t = -1 is the last row)
        cell = np.ravel_multi_index((t, i), shape, mode="wrap") if len(t) else t
        floats = {}
        for name in RAW_FLOATS:
            out = np.full(shape, np.nan)
            column = table.column(name).cast(pa.float64())
            out.ravel()[cell] = column.to_numpy().astype(np.float64, copy=False)
            floats[name] = out
        listed = np.zeros(shape, dtype=bool)
        listed.ravel()[cell] = pc.fill_null(table.column("listed"), False).to_numpy()
        sector = np.full(shape, None, dtype=object)
        sector_col = pc.dictionary_encode(table.column("sector").combine_chunks())
        names = np.array([*sector_col.dictionary.to_pylist(), None], dtype=object)
        codes = pc.fill_null(sector_col.indices, -1).to_numpy(zero_copy_only=False)
        sector.ravel()[cell] = names[codes]
        present = np.zeros(shape, dtype=bool)
        present.ravel()[cell] = table.column("present").to_numpy()
        return cls(days, secs, floats, listed, sector, present)

    def panel(self, keep: int, rule: UniverseRule) -> Panel:
        """The panel of the last ``keep`` rows (the earlier ones only warm the windows up),
        over the securities with a price row in ``days`` (every other field of a cell
        without one is unknown)."""
        cols = np.asarray(self.present.any(axis=0), dtype=bool)
        here = self.present[:, cols]

        def w(name: str) -> np.ndarray:
            return np.where(here, self.floats[name][:, cols], np.nan)

        secs = self.secs[cols]
        close, volume = w("close"), w("volume")
        adj_close = close * w("adj_factor")
        ret = np.full(close.shape, np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            ret[1:] = adj_close[1:] / adj_close[:-1] - 1.0
        dollar_volume = close * volume
        shares = w("shares_outstanding")
        market_cap = close * shares
        listed = here & self.listed[:, cols]
        priced = np.isfinite(close)
        adv = rolling_mean(dollar_volume, rule.adv_window, min_periods=rule.min_history)
        history = rolling_count(priced, rule.adv_window)
        with np.errstate(invalid="ignore"):
            in_universe = (
                listed
                & priced
                & (close >= rule.min_price)
                & (adv >= rule.min_adv)
                & (history >= rule.min_history)
            )
        sector = self.sector[:, cols].copy()
        sector[~here] = None
        rows = slice(len(self.days) - keep, None)
        dates = self.days[rows]

        def frame(values: np.ndarray) -> pd.DataFrame:
            # object stays object (None = unknown): pandas would otherwise infer a string
            # dtype for some columns and not others, depending on the rows in the window
            dtype = object if values.dtype == object else None
            return pd.DataFrame(values[rows], index=dates, columns=secs, dtype=dtype)

        fields = {
            "close": frame(close),
            "adj_close": frame(adj_close),
            "ret": frame(ret),
            "volume": frame(volume),
            "dollar_volume": frame(dollar_volume),
            "shares_outstanding": frame(shares),
            "market_cap": frame(market_cap),
            "book_equity": frame(w("book_equity")),
            "net_income": frame(w("net_income")),
            "revenue": frame(w("revenue")),
            "total_assets": frame(w("total_assets")),
            "operating_cash_flow": frame(w("operating_cash_flow")),
            "sentiment": frame(w("sentiment")),
            "adv_21d": frame(adv),
            "sector": frame(sector),
            "in_universe": frame(in_universe),
        }
        return Panel(dates=dates, securities=secs, fields=fields)


def load_window(
    start: dt.date, end: dt.date, rule: UniverseRule = DEFAULT_RULE
) -> tuple[dt.date, list[dt.date]]:
    """The first session loaded for a panel of ``[start, end]`` (the universe rule's warm-up
    before it) and the panel's sessions."""
    calendar = trading_calendar()
    sessions = calendar.sessions(start, end)
    if not sessions:
        raise EmptyPanelError(f"no trading sessions in [{start}, {end}]")
    return calendar.back(sessions[0], rule.warmup + 1)[0], sessions


def build_panel(
    lake: Lake,
    start: dt.date,
    end: dt.date,
    known_at: dt.datetime | None = None,
    rule: UniverseRule = DEFAULT_RULE,
    view: dt.datetime | None = None,
) -> Panel:
    """The point-in-time panel for the sessions in ``[start, end]`` (see the module docstring).

    ``view``: read every row's prices as known at ``view`` (when later than the row's own
    cutoff) — the history as known at one session, its price corrections and late prints
    included; the research stages of session ``s`` pass ``s``'s cutoff. Without it each
    row keeps the price first known at its own cutoff.

    Securities are every id priced in the window (sorted), so the panel is survivorship-free:
    names that delist later are there while they traded, and names are never dropped
    because of what happened after a row's date.
    """
    load_from, sessions = load_window(start, end, rule)
    table = load_panel_rows(lake, load_from, sessions[-1], known_at, view)
    days = pd.DatetimeIndex(pd.to_datetime(trading_calendar().sessions(load_from, sessions[-1])))
    return RawCells.from_rows(table, days).panel(len(sessions), rule)


def empty_input_tables(lake: Lake, known_at: dt.datetime | None = None) -> frozenset[str]:
    """The panel input tables holding no row known at ``known_at`` (default: ever).

    Point in time: a table whose first rows were published after ``known_at`` counts as
    empty, so a decision at ``known_at`` is the same whenever it is re-run. Reads at most
    one row per table (never-written tables are empty without a read).
    """
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    when = pa.scalar(known_at or LATEST, pa.timestamp("us", tz="UTC"))
    empty: set[str] = set()
    for name in INPUT_TABLES:
        if lake.table(name) is None:
            empty.add(name)
            continue
        dataset = lake.dataset(name)
        if isinstance(dataset, ds.InMemoryDataset):
            # a table already in memory (a backtest's scan): its earliest knowledge time,
            # one pass over one column, not a filtered scan of every column's batches
            first = pc.min(dataset.to_table(columns=["known_at"]).column("known_at"))
            known = first.is_valid and first.cast(when.type).value <= when.value
        else:
            found = dataset.head(1, columns=["known_at"], filter=pc.field("known_at") <= when)
            known = found.num_rows > 0
        if not known:
            empty.add(name)
    return frozenset(empty)
