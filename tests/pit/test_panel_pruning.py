"""sql/pit/panel.sql prunes the versions that cannot change its output before its joins:
it must return exactly what the unpruned query (``panel_reference.sql``, the query as it
was before) returns — the same rows, the same bits.

A tiny lake built to hit every pruning rule: old fundamentals periods restated or
retracted after the calendar's first session, several versions of one key before it
(ties on ``known_at`` and ``_ingested_at`` included), a period restated to another valid
date, two periods on one valid date, security-master tombstones and a late row with an
old date, an old dividend restated later, two dividends on one ex-date, retracted
actions, and a security with 40 settled dividends whose product depends on the order of
its multiplications. Read through several calendars (one starting after most of the
history, one at its start) and views, and under a ``known_at`` cap.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from pipelines.lake import Lake
from pipelines.lake.catalog.vendor_data import (
    CORPORATE_ACTIONS,
    FUNDAMENTALS,
    PRICES,
    SECURITY_MASTER,
    SENTIMENT,
)
from pipelines.lake.spec import TableSpec
from pipelines.pit import lake_panel
from pipelines.pit.lake_panel import _calendar, _query
from pipelines.timeline import LATEST, decision_cutoff, trading_calendar

pytestmark = pytest.mark.unit

REFERENCE = Path(__file__).with_name("panel_reference.sql")
CAL = trading_calendar()
UTC = dt.UTC


def _at(day: dt.date, hour: int = 22, minute: int = 0) -> dt.datetime:
    """An instant of ``day`` (22:00 UTC is before that session's cutoff)."""
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def _session(day: dt.date) -> dt.date:
    """The first session on or after ``day``."""
    return CAL.sessions(day, day + dt.timedelta(days=10))[0]


class _Rows:
    """Rows of one input table, each a version with its own batch id unless told."""

    def __init__(self, spec: TableSpec) -> None:
        self.spec = spec
        self.rows: list[dict[str, Any]] = []

    def add(
        self,
        valid: dt.date,
        known: dt.datetime,
        deleted: bool = False,
        ingested: dt.datetime | None = None,
        batch: str | None = None,
        **values: Any,
    ) -> None:
        row: dict[str, Any] = dict.fromkeys(self.spec.arrow_schema().names)
        row.update(values)
        row.update(
            valid_date=valid,
            known_at=known,
            _deleted=deleted,
            _ingested_at=ingested or known + dt.timedelta(minutes=5),
            _batch_id=batch or f"b{len(self.rows):04d}",
        )
        if "valid_year" in row:
            row["valid_year"] = valid.year
        self.rows.append(row)

    def table(self) -> pa.Table:
        return pa.Table.from_pylist(self.rows, schema=self.spec.arrow_schema())


def _quarter_ends(first: dt.date, last: dt.date) -> Iterator[tuple[str, dt.date]]:
    year, q = first.year, (first.month - 1) // 3 + 1
    while True:
        month = 3 * q
        end = dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)
        if end > last:
            return
        yield f"{year}Q{q}", end
        year, q = (year + 1, 1) if q == 4 else (year, q + 1)


def _fundamentals(rng: random.Random) -> pa.Table:
    fu = _Rows(FUNDAMENTALS)

    def values() -> dict[str, Any]:
        return {
            "revenue": round(rng.uniform(50, 150), 3),
            "net_income": round(rng.uniform(-5, 20), 3),
            "book_equity": round(rng.uniform(100, 400), 3),
            "total_assets": round(rng.uniform(500, 900), 3),
            "operating_cash_flow": round(rng.uniform(0, 30), 3),
            "shares_outstanding": round(rng.uniform(1e6, 2e6)),
        }

    def add(sec: str, period: str, valid: dt.date, known: dt.datetime, **kw: Any) -> None:
        deleted = kw.pop("deleted", False)
        fu.add(valid, known, deleted, security_id=sec, fiscal_period=period, **values(), **kw)

    # A: every kind of revision, before and after the calendar's first session
    for period, end in _quarter_ends(dt.date(2018, 1, 1), dt.date(2022, 6, 30)):
        add("A", period, end, _at(end + dt.timedelta(days=40)))
    add("A", "2019Q2", dt.date(2019, 6, 30), _at(dt.date(2019, 10, 20)))  # versions
    add("A", "2019Q2", dt.date(2019, 6, 30), _at(dt.date(2020, 2, 3)))  # before 2021
    add("A", "2019Q3", dt.date(2019, 9, 30), _at(dt.date(2021, 6, 15)))  # restated later
    add("A", "2018Q1", dt.date(2018, 3, 31), _at(dt.date(2021, 5, 19)))  # so is an older one
    add("A", "2020Q1", dt.date(2020, 3, 31), _at(dt.date(2020, 9, 1)), deleted=True)
    add("A", "2020Q2", dt.date(2020, 6, 30), _at(dt.date(2021, 4, 1)), deleted=True)
    add("A", "2020Q2", dt.date(2020, 6, 30), _at(dt.date(2021, 10, 1)))  # stated again
    add("A", "2019Q4", dt.date(2019, 12, 31), _at(dt.date(2020, 6, 1)), deleted=True)
    add("A", "2019Q4", dt.date(2019, 12, 31), _at(dt.date(2020, 8, 3)))  # and back
    add("A", "2020Q3", dt.date(2020, 10, 2), _at(dt.date(2021, 3, 1)))  # another date
    add("A", "2021Q1", dt.date(2021, 3, 31), _at(dt.date(2021, 9, 1)))  # known late
    add("A", "2022Q1", dt.date(2022, 3, 31), _at(dt.date(2022, 3, 31)), deleted=True)
    # ties: the same known_at (the later ingestion wins), then the same ingestion too
    known = _at(dt.date(2019, 3, 1))
    add("A", "2018Q4", dt.date(2018, 12, 31), known, ingested=known + dt.timedelta(hours=1))
    add("A", "2018Q4", dt.date(2018, 12, 31), known, ingested=known + dt.timedelta(hours=2))
    add("A", "2018Q3", dt.date(2018, 9, 30), known, ingested=known, batch="zz-1")
    add("A", "2018Q3", dt.date(2018, 9, 30), known, ingested=known, batch="zz-2")
    # two periods on one valid date (the same numbers, so either may rank first)
    same = values()
    for period in ("2017Q4", "2017Q4-restated-as-new"):
        fu.add(
            dt.date(2017, 12, 31),
            _at(dt.date(2018, 2, 10)),
            security_id="A",
            fiscal_period=period,
            **same,
        )
    # B: three periods (no four to rank), one retracted in the calendar
    for period, end in _quarter_ends(dt.date(2018, 1, 1), dt.date(2018, 9, 30)):
        add("B", period, end, _at(end + dt.timedelta(days=30)))
    add("B", "2018Q2", dt.date(2018, 6, 30), _at(dt.date(2021, 5, 3)), deleted=True)
    # C: nothing before the calendar, a period retracted in it; F: everything settled
    # before it
    for period, end in _quarter_ends(dt.date(2021, 4, 1), dt.date(2022, 9, 30)):
        add("C", period, end, _at(end + dt.timedelta(days=35)))
    add("C", "2021Q4", dt.date(2021, 12, 31), _at(dt.date(2022, 3, 1)), deleted=True)
    for period, end in _quarter_ends(dt.date(2018, 1, 1), dt.date(2020, 9, 30)):
        add("F", period, end, _at(end + dt.timedelta(days=45)))
    # G: its latest settled period retracted, so the fifth latest counts
    for period, end in _quarter_ends(dt.date(2019, 1, 1), dt.date(2020, 3, 31)):
        add("G", period, end, _at(end + dt.timedelta(days=30)))
    add("G", "2020Q1", dt.date(2020, 3, 31), _at(dt.date(2020, 6, 1)), deleted=True)
    # H: a period restated to an earlier valid date only late, just after another period
    for period, end in _quarter_ends(dt.date(2020, 1, 1), dt.date(2022, 6, 30)):
        valid = end - dt.timedelta(days=1) if period == "2020Q4" else end
        add("H", period, valid, _at(end + dt.timedelta(days=40)))
    add("H", "2020X", dt.date(2020, 12, 31), _at(dt.date(2021, 2, 1)))
    add("H", "2020X", dt.date(2020, 12, 28), _at(dt.date(2022, 1, 3)))
    return fu.table()


def _security_master() -> pa.Table:
    sm = _Rows(SECURITY_MASTER)

    def add(sec: str, valid: dt.date, known: dt.datetime, **kw: Any) -> None:
        deleted = kw.pop("deleted", False)
        row: dict[str, Any] = {"listed": True, "sector": "Tech", "list_date": dt.date(2010, 1, 4)}
        row.update(kw)
        sm.add(valid, known, deleted, security_id=sec, ticker=sec, **row)

    add("A", dt.date(2018, 1, 2), _at(dt.date(2018, 1, 2)))
    add("A", dt.date(2019, 5, 1), _at(dt.date(2019, 5, 1)), sector="Enrgy")
    add("A", dt.date(2019, 5, 1), _at(dt.date(2019, 6, 3)), sector="Energy")  # corrected
    add("A", dt.date(2020, 3, 2), _at(dt.date(2020, 3, 2)), sector="Health")
    add("A", dt.date(2020, 3, 2), _at(dt.date(2020, 6, 1)), deleted=True)  # retracted
    add("A", dt.date(2019, 8, 1), _at(dt.date(2021, 7, 1)), sector="Late")  # old date, late
    add("A", dt.date(2021, 3, 1), _at(dt.date(2021, 3, 1)), sector="Utilities")
    add("A", dt.date(2021, 9, 1), _at(dt.date(2021, 9, 1)), deleted=True)  # a bare tombstone
    delisted = {"listed": False, "delist_date": dt.date(2022, 2, 1)}
    add("A", dt.date(2022, 2, 1), _at(dt.date(2022, 2, 1)), **delisted)
    add("B", dt.date(2018, 1, 2), _at(dt.date(2018, 1, 2)), sector="Energy")
    add("B", dt.date(2020, 11, 2), _at(dt.date(2020, 11, 2)), deleted=True)
    add("C", dt.date(2021, 4, 1), _at(dt.date(2021, 4, 1)), sector="Health")
    add("C", dt.date(2021, 4, 1), _at(dt.date(2021, 8, 2)), sector="Materials")
    add("F", dt.date(2018, 1, 2), _at(dt.date(2018, 1, 2)))
    return sm.table()


def _actions_and_prices(rng: random.Random) -> tuple[pa.Table, pa.Table]:
    ca, px = _Rows(CORPORATE_ACTIONS), _Rows(PRICES)

    def price(sec: str, day: dt.date, known: dt.datetime | None = None) -> None:
        close = round(rng.uniform(20, 200), 4) if sec != "D" else rng.uniform(20, 200)
        px.add(day, known or _at(day), security_id=sec, ticker=sec, close=close, volume=1e6)

    def dividend(sec: str, aid: str, ex: dt.date, known: dt.datetime, **kw: Any) -> None:
        deleted = kw.pop("deleted", False)
        amount = kw.pop("amount", round(rng.uniform(0.1, 0.6), 4))
        ca.add(
            ex,
            known,
            deleted,
            security_id=sec,
            action_type="dividend",
            action_id=aid,
            amount=amount,
            currency="USD",
            **kw,
        )

    def split(sec: str, aid: str, ex: dt.date, ratio: float, known: dt.datetime) -> None:
        ca.add(ex, known, security_id=sec, action_type="split", action_id=aid, ratio=ratio)

    exes = [_session(dt.date(y, m, 15)) for y in range(2018, 2023) for m in (3, 6, 9, 12)]
    for ex in exes:
        dividend("A", f"A-{ex:%Y%m}", ex, _at(ex - dt.timedelta(days=20)))
        if ex.year != 2020 or ex.month != 6:  # that one's ex-date close is missing: f = k
            price("A", ex)
    ex = exes[2]  # 2018-09: a special dividend on the same ex-date
    dividend("A", f"A-{ex:%Y%m}-special", ex, _at(ex - dt.timedelta(days=10)))
    price("A", ex, _at(ex + dt.timedelta(days=3)))  # a later correction of its close
    ex = exes[3]  # 2018-12: revised twice before the calendar
    dividend("A", f"A-{ex:%Y%m}", ex, _at(ex + dt.timedelta(days=30)))
    dividend("A", f"A-{ex:%Y%m}", ex, _at(ex + dt.timedelta(days=90)))
    ex = exes[4]  # 2019-03: retracted before the calendar
    dividend("A", f"A-{ex:%Y%m}", ex, _at(ex + dt.timedelta(days=15)), deleted=True)
    ex = exes[5]  # 2019-06: restated in the calendar
    dividend("A", f"A-{ex:%Y%m}", ex, _at(dt.date(2021, 5, 3)), amount=0.77)
    ex = exes[13]  # 2021-06: retracted in the calendar
    dividend("A", f"A-{ex:%Y%m}", ex, _at(ex + dt.timedelta(days=20)), deleted=True)
    late = exes[14]  # 2021-09: published ten days after its ex-date
    dividend("A", f"A-{late:%Y%m}-late", late, _at(late + dt.timedelta(days=10)))
    split("A", "A-split-1", _session(dt.date(2019, 10, 15)), 2.0, _at(dt.date(2019, 10, 1)))
    split("A", "A-split-2", _session(dt.date(2021, 10, 15)), 1.5, _at(dt.date(2021, 10, 1)))
    # D: 40 settled dividends, awkward numbers (their product depends on the order)
    day = dt.date(2017, 9, 1)
    for n in range(40):
        day = _session(day + dt.timedelta(days=25))
        amount = rng.uniform(0.05, 3.0)
        dividend("D", f"D-{n:02d}", day, _at(day - dt.timedelta(days=5)), amount=amount)
        price("D", day)
    # E: its first dividend restated in the calendar, so nothing is settled before it
    for ex in exes[:10]:
        dividend("E", f"E-{ex:%Y%m}", ex, _at(ex - dt.timedelta(days=20)))
        price("E", ex)
    dividend("E", f"E-{exes[0]:%Y%m}", exes[0], _at(dt.date(2021, 2, 1)), amount=0.01)
    return ca.table(), px.table()


class _Tables:
    """The input tables, as :func:`~pipelines.pit.lake_panel._query` reads a lake's."""

    def __init__(self, tables: dict[str, pa.Table]) -> None:
        self.tables = tables

    def dataset(self, name: str) -> ds.Dataset:
        return ds.dataset(self.tables[name])


@pytest.fixture(scope="module")
def lake() -> Lake:
    rng = random.Random(7)
    actions, prices = _actions_and_prices(rng)
    tables = {
        "prices": prices,
        "corporate_actions": actions,
        "security_master": _security_master(),
        "fundamentals": _fundamentals(rng),
        "sentiment": SENTIMENT.arrow_schema().empty_table(),
    }
    return cast(Lake, _Tables(tables))


END = dt.date(2022, 6, 30)
WINDOWS = {
    # (first calendar session, last): after most of the history, at its start, later still
    "after-history": (dt.date(2021, 1, 4), END),
    "whole-history": (dt.date(2018, 1, 2), END),
    "late": (dt.date(2021, 9, 1), dt.date(2022, 12, 30)),
}
READS = {
    # (view, facts_at_view, known_at): no view; a retrain's history; one session's view;
    # capped by a knowledge time inside the calendar
    "own-cutoffs": (None, True, None),
    "retrain": ("end", False, "end"),
    "view": ("end", True, None),
    "capped": (None, True, dt.datetime(2021, 8, 1, tzinfo=UTC)),
}


def _run(lake: Lake, window: str, read: str) -> pa.Table:
    first, end = WINDOWS[window]
    view, facts_at_view, known = READS[read]
    at_end = decision_cutoff(end)
    calendar = _calendar(first, end, at_end if view == "end" else None, facts_at_view)
    known_at = at_end if known == "end" else known or LATEST
    rows = _query(lake, "pit/panel.sql", calendar, {"end": end, "known_at": known_at})
    return rows.sort_by([("security_id", "ascending"), ("p", "ascending")]).combine_chunks()


@pytest.mark.parametrize("read", sorted(READS))
@pytest.mark.parametrize("window", sorted(WINDOWS))
def test_pruned_query_returns_what_the_unpruned_one_does(
    lake: Lake, window: str, read: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    got = _run(lake, window, read)
    monkeypatch.setattr(lake_panel, "load_sql", lambda _name: REFERENCE.read_text())
    want = _run(lake, window, read)
    assert got.schema.equals(want.schema)
    assert got.equals(want), (window, read)
    assert got.num_rows > 0


def test_the_cases_reach_the_state_they_were_built_for(lake: Lake) -> None:
    """The data exercises what the pruning must keep: fundamentals flows, retracted and
    restated master rows, factors from settled and unsettled actions."""
    rows = _run(lake, "after-history", "own-cutoffs").to_pylist()
    a = [r for r in rows if r["security_id"] == "A"]
    assert any(r["net_income"] is not None for r in a)
    assert any(r["listed"] is None for r in a) and any(r["listed"] is False for r in a)
    assert len({r["adj_factor"] for r in a}) > 5
    assert {r["sector"] for r in a} >= {"Utilities", None}


def test_settled_dividends_multiply_in_ex_date_order(lake: Lake) -> None:
    """D's 40 settled factors are multiplied once and the change points multiply on from
    there: the same left-to-right product as the unpruned query, which another order of
    the same multiplications would not give."""
    tables = cast(_Tables, lake).tables
    closes = {
        r["valid_date"]: r["close"] for r in tables["prices"].to_pylist() if r["security_id"] == "D"
    }
    factors = [
        1.0 + r["amount"] / closes[r["valid_date"]]
        for r in sorted(tables["corporate_actions"].to_pylist(), key=lambda r: r["valid_date"])
        if r["security_id"] == "D"
    ]
    left = 1.0
    for f in factors:
        left *= f
    right = 1.0
    for f in reversed(factors):
        right *= f
    assert left != right  # the data can tell the orders apart
    rows = _run(lake, "after-history", "own-cutoffs").to_pylist()
    assert {r["adj_factor"] for r in rows if r["security_id"] == "D"} == {left}
