"""End-of-day positions, cash and reconciliation against the broker.

``reconcile_day(lake, broker, portfolio_id, date)``:

1. pulls the day's order states and fills for *our* orders (:func:`sync_orders`);
2. computes **our** end-of-day positions = our previous positions (latest ``positions``
   row per security before ``date``), through the splits and cash dividends with an
   ex-date after the previous book and on or before ``date`` (as known now,
   :mod:`.corporate_actions`), + the day's signed fills from the ``fills`` table, and our
   cash likewise (+ dividends − signed quantity × price − commission); writes both (a row is
   re-written only when its value changed, as a new version); a position in a security
   delisted by ``date`` (security master as known now) becomes cash at its delisting
   price (:mod:`.delistings`), exactly as the broker books it;
3. compares them with the **broker's** positions (and cash, when it reports cash): one
   ``reconciliation`` row per security in either book, ``difference = theirs − ours``,
   ``status`` ``match`` / ``break`` (|difference| > tolerance) and ``$CASH`` ``unverified``
   when the broker does not report cash;
4. audits the result (a summary event plus one per break, and broker fills on ids we never
   sent), and optionally runs TCA when a price source is given.

Breaks are reported, never "fixed": booking the broker's view into our positions is a
human decision (see ``seed_positions`` for an explicit, audited correction).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.execution.broker import Broker, consistent_reads
from pipelines.execution.corporate_actions import apply_actions, lake_corporate_actions
from pipelines.execution.delistings import lake_delistings
from pipelines.execution.execute import sync_orders
from pipelines.execution.prices import PriceSource, SessionBar
from pipelines.execution.records import (
    now_utc,
    read_day,
    records_table,
    short_hash,
    write_audit,
)
from pipelines.lake import get_table
from pipelines.lake.interface import Store
from pipelines.timeline import LATEST

CASH_ITEM = "$CASH"
# How far back "our previous positions" may be found (a portfolio idle for longer is flat).
_LOOKBACK = dt.timedelta(days=3660)
# The window read first for our book before a date. A reconciled session records the whole
# book (every security it held or traded, a closed one at 0), so when the newest rows there
# are such a record, older rows cannot change the latest row of any security: the answer of
# the whole lookback, from a few sessions' rows. Reading ten years of positions every
# session made a long backtest quadratic in its length.
_NEAR = dt.timedelta(days=14)
#: ``source`` of position rows that need not hold the whole book (an operator's seed or
#: correction of some securities): a read whose newest rows are these reads the lookback.
_PARTIAL_SOURCES = frozenset({"seed"})


@dataclass
class ReconciliationReport:
    """Our book vs the broker's for one portfolio and date.

    ``rows`` are the ``reconciliation`` rows (security_id, ours, theirs, difference,
    status, note); ``breaks`` the subset with status ``break``; ``foreign_fills`` the
    broker's fill ids on client order ids we never sent; ``previous`` our positions of
    record before ``date`` (:func:`previous_positions`, as read for the reconciliation).
    """

    portfolio_id: str
    date: dt.date
    _rows: pd.DataFrame | None
    foreign_fills: list[str] = field(default_factory=list)
    tca: pd.DataFrame | None = None
    previous: dict[str, float] = field(default_factory=dict)
    #: The rows as records (``reconcile_day``'s), when ``_rows`` is not built yet: the
    #: frame is built at the first question that needs it (a daily run asks only
    #: :attr:`n_breaks`).
    _records: list[dict[str, object]] | None = field(default=None, repr=False)

    @property
    def rows(self) -> pd.DataFrame:
        if self._rows is None:
            records = self._records or []
            # pd.DataFrame(records), column by column (the same frame)
            self._rows = _frame(records, list(records[0])) if records else pd.DataFrame()
        return self._rows

    @property
    def breaks(self) -> pd.DataFrame:
        return self.rows[self.rows["status"] == "break"].reset_index(drop=True)

    @property
    def n_breaks(self) -> int:
        """``len(self.breaks)``, without building the frame."""
        if self._rows is None and self._records is not None:
            return sum(1 for r in self._records if r["status"] == "break")
        return int(np.count_nonzero(self.rows["status"].to_numpy() == "break"))

    @property
    def clean(self) -> bool:
        return self.breaks.empty


def _history(
    lake: Store, table: str, portfolio_id: str, date: dt.date, currency: str = "USD"
) -> pa.Table:
    """Our ``table`` rows (positions or cash) strictly before ``date``, as the store answers
    them (what :func:`~pipelines.execution.records.read_day` reads, without converting them
    to pandas): those of the last ``_NEAR`` days when they already decide the answer
    (:func:`_decides`), else those of the whole lookback window. Either way the latest row
    of every security (of ``currency``) and the newest date are those of the lookback."""
    last = date - dt.timedelta(days=1)
    near = _read(lake, table, (date - _NEAR, last), portfolio_id)
    if _decides(table, near, currency):
        return near
    return _read(lake, table, (date - _LOOKBACK, last), portfolio_id)


def _read(lake: Store, table: str, dates: tuple[dt.date, dt.date], portfolio_id: str) -> pa.Table:
    """Our rows of ``table`` dated in ``dates``, latest version per key (read_day's read)."""
    flt = pc.field("portfolio_id") == pa.scalar(portfolio_id, pa.string())
    return lake.as_of(table, known_at=LATEST, valid_at=dates, filter=flt)


def _decides(table: str, near: pa.Table, currency: str) -> bool:
    """Whether ``near`` (our newest rows of ``table``) holds the latest row of every key the
    caller uses: for cash, a row of ``currency``; for positions, its newest date's rows are
    a reconciled whole book (no operator's seed of some securities), so a security missing
    there was closed (a 0 row) before it, within ``near`` or not at all."""
    if not near.num_rows:
        return False
    if table == "cash":
        return bool(pc.any(pc.equal(near.column("currency"), currency)).as_py())
    days = near.column("valid_date")
    newest = near.filter(pc.equal(days, pc.max(days)))
    partial = pa.array(sorted(_PARTIAL_SOURCES), pa.string())
    return not bool(pc.any(pc.is_in(newest.column("source"), value_set=partial)).as_py())


def _float(value: object) -> float:
    """A float cell as pandas reads it (a null is NaN)."""
    return math.nan if value is None else float(value)  # type: ignore[arg-type]


def _float_values(table: pa.Table, name: str) -> list[float]:
    """Float column ``name`` of ``table`` as Python floats, a null as NaN (as pandas'
    ``tolist`` of the column's frame gives them)."""
    values = table.column(name).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=float).tolist()  # type: ignore[no-any-return]


def _latest_positions(table: pa.Table) -> dict[str, float]:
    """The quantity of each security's latest row (by valid date) in ``table``, zeros
    dropped (a null quantity reads as NaN and is kept, as through pandas)."""
    if not table.num_rows:
        return {}
    # One row per security and date (the store answers the latest version of each): in
    # descending date order, a security's first row is its latest.
    days = pc.cast(table.column("valid_date"), pa.int32()).to_numpy()
    newest_first = np.argsort(-days.astype(np.int64), kind="stable")
    sids = table.column("security_id").to_numpy(zero_copy_only=False)[newest_first]
    _, first = np.unique(sids, return_index=True)
    pick = newest_first[first]
    qty = table.column("quantity").take(pa.array(pick)).to_pylist()
    ids = sids[first].tolist()
    latest = {str(s): _float(q) for s, q in zip(ids, qty, strict=True)}
    return {s: q for s, q in latest.items() if q}


def _book_date(*tables: pa.Table) -> dt.date | None:
    dates = [pc.max(t.column("valid_date")).as_py() for t in tables if t.num_rows]
    return max(dates) if dates else None


def _latest_cash(table: pa.Table, currency: str) -> float:
    if not table.num_rows:
        return 0.0
    mine = table.filter(pc.equal(table.column("currency"), currency))
    if not mine.num_rows:
        return 0.0
    days = mine.column("valid_date")
    newest = pc.index(days, pc.max(days)).as_py()
    return _float(mine.column("balance")[newest].as_py())


def previous_positions(lake: Store, portfolio_id: str, date: dt.date) -> dict[str, float]:
    """Our latest recorded position per security strictly before ``date`` (zeros dropped)."""
    return _latest_positions(_history(lake, "positions", portfolio_id, date))


def previous_book_date(lake: Store, portfolio_id: str, date: dt.date) -> dt.date | None:
    """The date of our latest recorded book (positions or cash) strictly before ``date``."""
    return _book_date(
        _history(lake, "positions", portfolio_id, date), _history(lake, "cash", portfolio_id, date)
    )


def previous_cash(lake: Store, portfolio_id: str, date: dt.date, currency: str = "USD") -> float:
    """Our latest recorded cash balance before ``date`` (0 if none)."""
    return _latest_cash(_history(lake, "cash", portfolio_id, date, currency), currency)


class _SessionOnce:
    """``prices`` answering every ``session`` question from one read of all the session's
    bars, when the source can give them (a bar depends only on its own security's rows,
    :meth:`~pipelines.execution.prices.LakePriceSource.session_all`): reconciliation's
    marks and its TCA ask for the same session, for different securities."""

    def __init__(self, prices: PriceSource) -> None:
        self.prices = prices
        self._bars: dict[dt.date, dict[str, SessionBar]] = {}

    def session(self, trade_date: dt.date, security_ids: Sequence[str]) -> dict[str, SessionBar]:
        every = getattr(self.prices, "session_all", None)
        if every is None:
            return self.prices.session(trade_date, security_ids)
        bars = self._bars.get(trade_date)
        if bars is None:
            bars = self._bars[trade_date] = every(trade_date)
        return {s: bars[s] for s in sorted(security_ids) if s in bars}


def seed_positions(
    lake: Store,
    portfolio_id: str,
    date: dt.date,
    positions: Mapping[str, float],
    cash: float | None = None,
    *,
    currency: str = "USD",
    known_at: dt.datetime | None = None,
    reason: str = "initial positions",
) -> None:
    """Record positions (and cash) as of end of ``date`` without fills — opening a book or
    an approved correction after a break. Audited with ``reason``."""
    now = known_at or now_utc()
    rows: list[dict[str, object]] = [
        {
            "portfolio_id": portfolio_id,
            "security_id": s,
            "quantity": float(q),
            "price": None,
            "market_value": None,
            "source": "seed",
        }
        for s, q in sorted(positions.items())
    ]
    _write_versioned(
        lake, "positions", rows, date, portfolio_id, ["quantity", "source"], "security_id", now
    )
    if cash is not None:
        _write_versioned(
            lake,
            "cash",
            [
                {
                    "portfolio_id": portfolio_id,
                    "currency": currency,
                    "balance": float(cash),
                    "trade_flow": 0.0,
                    "commission": 0.0,
                    "source": "seed",
                }
            ],
            date,
            portfolio_id,
            ["balance", "source"],
            "currency",
            now,
        )
    write_audit(
        lake,
        portfolio_id,
        date,
        "reconcile",
        [
            {
                "event": "positions_seeded",
                "detail": {"positions": dict(positions), "cash": cash, "reason": reason},
            }
        ],
        known_at=now,
    )


def _frame(records: list[dict[str, object]], columns: list[str]) -> pd.DataFrame:
    """``pd.DataFrame(records, columns=columns)``, built column by column (the same
    frame, dtypes included, when there are rows; ~25% cheaper for a book's rows)."""
    if not records:
        return pd.DataFrame(records, columns=columns)
    return pd.DataFrame({c: [r[c] for r in records] for c in columns}, columns=columns)


def _changed(
    lake: Store,
    table: str,
    date: dt.date,
    portfolio_id: str,
    rows: pd.DataFrame,
    cols: list[str],
    key: str,
) -> pd.DataFrame:
    """The rows of ``rows`` that differ from the latest stored version (on ``cols``)."""
    if rows.empty or not _read(lake, table, (date, date), portfolio_id).num_rows:
        # Nothing stored for the day (every session of a run): no frame of it to build.
        return rows
    stored = read_day(lake, table, date, portfolio_id)
    old = stored.set_index(key)
    keep = []
    for r in rows.to_dict("records"):
        k = r[key]
        if k not in old.index:
            keep.append(True)
            continue
        prev = old.loc[k]
        keep.append(any(not _same(prev[c], r[c]) for c in cols))
    return rows[keep]


def _same(a: object, b: object) -> bool:
    if (
        a is None
        or b is None
        or (isinstance(a, float) and math.isnan(a))
        or (isinstance(b, float) and math.isnan(b))
    ):
        return (a is None or (isinstance(a, float) and math.isnan(a))) == (
            b is None or (isinstance(b, float) and math.isnan(b))
        )
    if isinstance(a, int | float) and isinstance(b, int | float):
        return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)))
    return a == b


def _write_versioned(
    lake: Store,
    table: str,
    records: list[dict[str, object]],
    date: dt.date,
    portfolio_id: str,
    cols: list[str],
    key: str,
    now: dt.datetime,
) -> int:
    """Write rows that are new or changed as new versions; unchanged rows add nothing.

    ``records``: the rows, one dict of the table's business columns each (the rows of
    ``pd.DataFrame(records)``)."""
    if not records:
        return 0
    spec = get_table(table)
    changed: pd.DataFrame | None = None
    data: pa.Table | None = None
    if _read(lake, table, (date, date), portfolio_id).num_rows:
        # Rows stored for the day already (a re-run): compare with them in pandas.
        changed = _changed(
            lake, table, date, portfolio_id, _frame(records, list(records[0])), cols, key
        )
        if changed.empty:
            return 0
        # (The frame of those columns built from them: the same JSON as selecting them.)
        hashed = pd.DataFrame({c: changed[c] for c in [key, *cols]})
    else:
        # Every row is new (every session of a run): the frame of the hashed columns alone
        # (the same columns as the rows' frame has: the same JSON), the rows straight to
        # Arrow (records_table: the values the frame converts to, or None when unsure).
        hashed = _frame(records, [key, *cols])
        data = records_table(spec, records) if now.tzinfo is not None else None
    # Batch ids hash key + values, so an identical restatement is stored once — per
    # portfolio: another portfolio's identical book is a different fact.
    content = short_hash(hashed.to_json(), n=32)
    bid = f"{table}:{portfolio_id}:{date.isoformat()}:{content}"
    if data is None:
        if changed is None:
            changed = _frame(records, list(records[0]))
        # The business columns converted as the write would convert them (column by
        # column); the valid date and knowledge time filled by the write, with the values a
        # column of them would give, without building those columns in pandas first.
        names = [f.name for f in spec.input_fields if f.name not in ("valid_date", "known_at")]
        data = pa.Table.from_pandas(changed, columns=names, preserve_index=False)
    res = lake.write(table, data, known_at=now, valid_date=date, batch_id=bid)
    return res.rows if res.written else 0


def reconcile_day(
    lake: Store,
    broker: Broker,
    portfolio_id: str,
    date: dt.date,
    *,
    currency: str = "USD",
    tolerance: float = 1e-6,
    cash_tolerance: float = 0.01,
    prices: PriceSource | None = None,
    clock: Callable[[], dt.datetime] = now_utc,
) -> ReconciliationReport:
    """Sync, book our end-of-day positions and cash, compare with the broker (module doc).

    Promises: the ``positions``, ``cash`` and ``reconciliation`` rows for ``date`` reflect
    every fill the broker reported on our orders; a security where the broker's quantity
    differs from ours by more than ``tolerance`` shares is a ``break``; re-running adds
    rows only for values that changed.
    """
    if prices is not None:
        prices = _SessionOnce(prices)
    with consistent_reads(broker):  # the broker's book as of one pass, for every query
        # The day's orders, read once for the sync and the TCA (nothing here writes them).
        orders = read_day(lake, "orders", date, portfolio_id)
        sync = sync_orders(lake, broker, portfolio_id, date, clock=clock, orders=orders)
        now = clock()
        # Our book of record before `date`, read once (positions, its date, cash).
        held_before = _history(lake, "positions", portfolio_id, date)
        cash_before = _history(lake, "cash", portfolio_id, date, currency)
        prev = _latest_positions(held_before)
        # Splits and dividends since our last book meet the positions of record first.
        actions = (
            lake_corporate_actions(
                lake,
                prev,
                known_at=now,
                after=_book_date(held_before, cash_before),
                through=date,
            )
            if prev
            else []
        )
        ours, dividends, applied = apply_actions(prev, actions)
        # The day's fills as the store answers them (read_day's rows, not converted to
        # pandas): the booking and the TCA read a few of their columns.
        fills = _read(lake, "fills", (date, date), portfolio_id)
        flow = 0.0
        commission = 0.0
        # In the fills' order, as Python values (no per-row dicts): the same sums. The ids
        # and sides are never null in the lake; a null amount reads as NaN, as in pandas.
        for side, sid, qty, px, fee in zip(
            fills.column("side").to_pylist(),
            fills.column("security_id").to_pylist(),
            _float_values(fills, "quantity"),
            _float_values(fills, "price"),
            _float_values(fills, "commission"),
            strict=True,
        ):
            sgn = 1.0 if side == "buy" else -1.0
            ours[sid] = ours.get(sid, 0.0) + sgn * float(qty)
            flow -= sgn * float(qty) * float(px)
            commission += float(fee or 0.0)
        # Delistings in force on `date` (as known now): the position becomes cash at the
        # delisting price, as the broker books it (pipelines.execution.delistings).
        held = [s for s, q in ours.items() if abs(q) > 1e-9]
        delisted = lake_delistings(lake, held, known_at=now, through=date) if held else {}
        proceeds = 0.0
        for s, d in sorted(delisted.items()):
            proceeds += ours[s] * d.price
        marks: dict[str, float] = {}
        if prices is not None:
            marks = {s: b.close for s, b in prices.session(date, sorted(ours)).items()}
        pos_rows: list[dict[str, object]] = [
            {
                "portfolio_id": portfolio_id,
                "security_id": s,
                "quantity": 0.0 if s in delisted else q,
                "price": delisted[s].price if s in delisted else marks.get(s),
                "market_value": 0.0 if s in delisted else (q * marks[s] if s in marks else None),
                "source": "delisting" if s in delisted else "fills",
            }
            for s, q in sorted(ours.items())
        ]
        _write_versioned(
            lake,
            "positions",
            pos_rows,
            date,
            portfolio_id,
            ["quantity", "price"],
            "security_id",
            now,
        )
        our_cash = _latest_cash(cash_before, currency) + dividends + flow - commission + proceeds
        delisting_events: list[dict[str, object]] = [
            {
                "event": "delisted",
                "security_id": s,
                "detail": {
                    "quantity": ours[s],
                    "price": d.price,
                    "proceeds": ours[s] * d.price,
                    "effective_date": d.effective_date.isoformat(),
                    "reason": d.reason,
                },
            }
            for s, d in sorted(delisted.items())
        ]
        for s in delisted:
            ours[s] = 0.0
        cash_rows: list[dict[str, object]] = [
            {
                "portfolio_id": portfolio_id,
                "currency": currency,
                "balance": our_cash,
                "trade_flow": flow,
                "commission": commission,
                "source": "+".join(
                    ["fills"]
                    + (["corporate_actions"] if applied else [])
                    + (["delisting"] if delisted else [])
                ),
            }
        ]
        _write_versioned(lake, "cash", cash_rows, date, portfolio_id, ["balance"], "currency", now)

        theirs = broker.positions(portfolio_id)
        rec: list[dict[str, object]] = []
        for s in sorted(set(ours) | set(theirs)):
            o, t = float(ours.get(s, 0.0)), float(theirs.get(s, 0.0))
            if o == 0 and t == 0:
                continue
            diff = t - o
            status = "break" if abs(diff) > tolerance else "match"
            note = None
            if status == "break":
                note = "broker holds more" if diff > 0 else "broker holds less"
            rec.append(
                {
                    "portfolio_id": portfolio_id,
                    "security_id": s,
                    "ours": o,
                    "theirs": t,
                    "difference": diff,
                    "status": status,
                    "note": note,
                    "broker": broker.name,
                }
            )
        their_cash = broker.cash(portfolio_id)
        cash_diff = (their_cash - our_cash) if their_cash is not None else 0.0
        rec.append(
            {
                "portfolio_id": portfolio_id,
                "security_id": CASH_ITEM,
                "ours": our_cash,
                "theirs": their_cash,
                "difference": cash_diff,
                "status": (
                    "unverified"
                    if their_cash is None
                    else ("break" if abs(cash_diff) > cash_tolerance else "match")
                ),
                "note": "broker does not report cash" if their_cash is None else None,
                "broker": broker.name,
            }
        )
        _write_versioned(
            lake,
            "reconciliation",
            rec,
            date,
            portfolio_id,
            ["ours", "theirs", "status"],
            "security_id",
            now,
        )
        # The rows' frame (pd.DataFrame(rec)) is built when asked for (report.rows).
        report = ReconciliationReport(
            portfolio_id,
            date,
            None,
            foreign_fills=sync.foreign_fills,
            previous=dict(prev),
            _records=rec,
        )
        # report.breaks, as a frame only when there is one (the statuses are rec's).
        n_breaks = sum(1 for r in rec if r["status"] == "break")
        breaks = report.breaks if n_breaks else None
        events: list[dict[str, object]] = [
            {
                "event": "breaks_found" if n_breaks else "reconciled",  # report.clean
                "detail": {
                    "items": len(rec),
                    "breaks": n_breaks,
                    "foreign_fills": sync.foreign_fills,
                    "fills_synced": sync.fills,
                },
            }
        ]
        events += [
            {
                "event": "break",
                "security_id": b["security_id"],
                "detail": {k: b[k] for k in ("ours", "theirs", "difference", "note")},
            }
            for b in (breaks.to_dict("records") if breaks is not None else [])
        ]
        events += delisting_events
        events += [
            {"event": "corporate_action", "security_id": a.action.security_id, "detail": a.event()}
            for a in applied
        ]
        write_audit(lake, portfolio_id, date, "reconcile", events, known_at=now)  # type: ignore[arg-type]
        if prices is not None:
            from pipelines.execution.tca import run_tca

            report.tca = run_tca(
                lake, portfolio_id, date, prices, clock=clock, orders=orders, fills=fills
            )
        return report


__all__ = [
    "CASH_ITEM",
    "ReconciliationReport",
    "previous_book_date",
    "previous_cash",
    "previous_positions",
    "reconcile_day",
    "seed_positions",
]
