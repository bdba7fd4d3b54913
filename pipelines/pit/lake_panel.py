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

The one bitemporal SQL query is ``sql/pit/panel.sql`` (DuckDB over the Delta tables'
``to_pyarrow_dataset()``); the universe rule is applied here, vectorized.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

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


def _calendar(first: dt.date, end: dt.date) -> pa.Table:
    days = trading_calendar().sessions(first, end)
    return pa.table(
        {
            "d": pa.array(days, pa.date32()),
            "cutoff": pa.array(decision_cutoffs(days), pa.timestamp("us", tz="UTC")),
        }
    )


def _dataset(lake: Lake, name: str, version: int | None) -> ds.Dataset:
    """The table's current version, or its Delta ``version`` (to rebuild an old model)."""
    if version is None:
        return lake.dataset(name)
    from deltalake import DeltaTable

    table = DeltaTable(
        lake.location.table_uri(name), version=version, storage_options=lake.location.options()
    )
    return table.to_pyarrow_dataset()


def load_panel_rows(
    lake: Lake,
    start: dt.date,
    end: dt.date,
    known_at: dt.datetime | None = None,
    versions: Mapping[str, int] | None = None,
) -> pa.Table:
    """The long point-in-time rows of ``sql/pit/panel.sql`` for sessions ``[start, end]``.

    ``versions`` pins input tables to Delta versions (default: the latest).
    """
    import duckdb

    # Up to HISTORY_SESSIONS before the start, or from the calendar's start for early history.
    calendar = trading_calendar()
    first = calendar.sessions(calendar.start, start)[-HISTORY_SESSIONS:][0]
    con = duckdb.connect(config={"threads": 2})
    try:
        for name in INPUT_TABLES:
            con.register(name, _dataset(lake, name, (versions or {}).get(name)))
        con.register("cal", _calendar(first, end))
        params = {"start": start, "end": end, "known_at": known_at or LATEST}
        # ASOF joins against the small calendar: the merge operator, not a loop + arg_min
        con.execute("SET asof_loop_join_threshold = 0")
        rows: pa.Table = con.sql(load_sql("pit/panel.sql"), params=params).to_arrow_table()
        return rows
    finally:
        con.close()


def _wide(rows: pd.DataFrame, column: str, dates: pd.DatetimeIndex, secs: pd.Index) -> np.ndarray:
    out = np.full((len(dates), len(secs)), np.nan)
    vals = rows[column].to_numpy(dtype=np.float64, na_value=np.nan)
    out[rows["_t"].to_numpy(), rows["_i"].to_numpy()] = vals
    return out


def build_panel(
    lake: Lake,
    start: dt.date,
    end: dt.date,
    known_at: dt.datetime | None = None,
    rule: UniverseRule = DEFAULT_RULE,
    versions: Mapping[str, int] | None = None,
) -> Panel:
    """The point-in-time panel for the sessions in ``[start, end]`` (see the module docstring).

    Securities are every id priced in the window (sorted), so the panel is survivorship-free:
    names that delist later are there while they traded, and names are never dropped
    because of what happened after a row's date.
    """
    calendar = trading_calendar()
    sessions = calendar.sessions(start, end)
    if not sessions:
        raise EmptyPanelError(f"no trading sessions in [{start}, {end}]")
    load_from = calendar.back(sessions[0], rule.warmup + 1)[0]
    table = load_panel_rows(lake, load_from, sessions[-1], known_at, versions)
    all_days = pd.DatetimeIndex(pd.to_datetime(calendar.sessions(load_from, sessions[-1])))
    rows = table.to_pandas()
    secs = pd.Index(sorted(rows["security_id"].unique()), dtype=object)
    rows["_t"] = all_days.get_indexer(pd.to_datetime(rows["date"]))
    rows["_i"] = secs.get_indexer(rows["security_id"])

    def w(col: str) -> np.ndarray:
        return _wide(rows, col, all_days, secs)

    close, volume = w("close"), w("volume")
    adj_close = close * w("adj_factor")
    ret = np.full(close.shape, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        ret[1:] = adj_close[1:] / adj_close[:-1] - 1.0
    dollar_volume = close * volume
    shares = w("shares_outstanding")
    market_cap = close * shares
    listed = np.zeros(close.shape, dtype=bool)
    listed[rows["_t"].to_numpy(), rows["_i"].to_numpy()] = (
        rows["listed"].fillna(False).to_numpy(dtype=bool)
    )
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
    sector = np.full(close.shape, None, dtype=object)
    sector[rows["_t"].to_numpy(), rows["_i"].to_numpy()] = rows["sector"].to_numpy(dtype=object)

    keep = slice(len(all_days) - len(sessions), None)
    dates = all_days[keep]

    def frame(values: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(values[keep], index=dates, columns=secs)

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


def empty_input_tables(lake: Lake, known_at: dt.datetime | None = None) -> frozenset[str]:
    """The panel input tables holding no row known at ``known_at`` (default: ever).

    Point in time: a table whose first rows were published after ``known_at`` counts as
    empty, so a decision at ``known_at`` is the same whenever it is re-run. Reads at most
    one row per table (never-written tables are empty without a read).
    """
    import pyarrow.compute as pc

    when = pa.scalar(known_at or LATEST, pa.timestamp("us", tz="UTC"))
    empty: set[str] = set()
    for name in INPUT_TABLES:
        if lake.table(name) is None:
            empty.add(name)
            continue
        dataset = lake.dataset(name)
        found = dataset.head(1, columns=["known_at"], filter=pc.field("known_at") <= when)
        if found.num_rows == 0:
            empty.add(name)
    return frozenset(empty)


def input_versions(lake: Lake) -> dict[str, int]:
    """Delta version of every panel input table (recorded with each trained model)."""
    out: dict[str, int] = {}
    for name in INPUT_TABLES:
        table = lake.table(name)
        if table is not None:
            out[name] = int(table.version())
    return out
