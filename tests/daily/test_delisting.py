"""Delisted names become cash, unpriced names are marked stale: the loop never stops.

A simulated market (seed 8) in which ``S000033`` is acquired: its last trading day and
delisting date is 2024-05-10 (security master, reason ``ACQUIRED``, published before the
cutoff). The book is opened on 2024-05-09 holding it, plus ``S000001`` whose price for
2024-05-10 is missing from the lake, and ``S000002`` whose last price in the lake is from
January (out of the loop's 60-session window: the README's backtest stopped on such a
name with "no close for held securities"). The daily loop (file-backed paper broker, as
the DAG uses) then runs 2024-05-10 and 2024-05-13.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pipelines.daily.loop import DayResult, run_day
from pipelines.daily.stages import paper_broker
from pipelines.execution.paper import PaperBroker
from pipelines.execution.reconcile import seed_positions
from pipelines.lake import Lake
from pipelines.testing.lakes import simulated_lake
from pipelines.timeline import LATEST, decision_cutoff
from tests.daily.helpers import CONFIG, END, START

pytestmark = [pytest.mark.unit, pytest.mark.slow]

DELISTED, UNPRICED, HALTED = "S000033", "S000001", "S000002"
OPEN, DELIST_DAY, NEXT_DAY = dt.date(2024, 5, 9), dt.date(2024, 5, 10), dt.date(2024, 5, 13)
HALTED_SINCE = dt.date(2024, 1, 16)
SHARES = {DELISTED: 1000.0, UNPRICED: 500.0, HALTED: 200.0}


def _drop_price(frames: dict[str, pd.DataFrame]) -> Mapping[str, pd.DataFrame]:
    prices = frames["prices"]
    day = prices["valid_date"]
    gone = (prices["security_id"] == UNPRICED) & (day == pd.Timestamp(DELIST_DAY))
    gone |= (prices["security_id"] == HALTED) & (day >= pd.Timestamp(HALTED_SINCE))
    return {**frames, "prices": prices[~gone].reset_index(drop=True)}


def _close(lake: Lake, sid: str, day: dt.date) -> float:
    """The last close of ``sid`` on or before ``day`` (everything in the lake)."""
    frame = lake.as_of(
        "prices", known_at=LATEST, valid_at=(day - dt.timedelta(days=400), day)
    ).to_pandas()
    frame = frame[frame["security_id"] == sid].sort_values("valid_date")
    return float(frame["close"].iloc[-1])


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root: Path = tmp_path_factory.mktemp("delisting")
    lake = simulated_lake(
        root / "lake", universe=40, start=START, end=END, signal=0.3, seed=8, perturb=_drop_price
    )
    pid = CONFIG.portfolio_id
    cash = CONFIG.initial_capital - sum(q * _close(lake, s, OPEN) for s, q in SHARES.items())
    broker = paper_broker(lake, CONFIG)
    broker.connect()
    broker.seed(pid, SHARES, cash=cash)
    seed_positions(lake, pid, OPEN, SHARES, cash=cash, known_at=decision_cutoff(OPEN))
    results: list[DayResult] = []
    for day in (DELIST_DAY, NEXT_DAY):
        broker.prices.known_at = decision_cutoff(day)  # type: ignore[attr-defined]
        results.append(run_day(lake, day, CONFIG, broker))  # raises if a stage fails
    return {"lake": lake, "broker": broker, "results": results, "cash": cash, "pid": pid}


def _day_rows(lake: Lake, table: str, day: dt.date) -> pd.DataFrame:
    return lake.as_of(table, known_at=LATEST, valid_at=day).to_pandas()


def test_security_master_keeps_the_delisting_reason(loop: dict[str, Any]) -> None:
    master = _day_rows(loop["lake"], "security_master", DELIST_DAY)
    row = master[master["security_id"] == DELISTED].iloc[0]
    assert not row["listed"] and row["delist_reason"] == "ACQUIRED"


def test_the_run_goes_through_both_sessions(loop: dict[str, Any]) -> None:
    for res in loop["results"]:
        assert "reconcile" in res.outputs and "report" in res.outputs


def test_broker_cashes_out_the_delisted_name_at_its_last_close(loop: dict[str, Any]) -> None:
    lake, broker, pid = loop["lake"], loop["broker"], loop["pid"]
    assert isinstance(broker, PaperBroker)
    assert DELISTED not in broker.positions(pid)
    [event] = broker.delistings(pid)
    price = _close(lake, DELISTED, DELIST_DAY)
    assert event["security_id"] == DELISTED
    assert event["effective_date"] == DELIST_DAY.isoformat()
    assert event["reason"] == "ACQUIRED"
    assert event["price"] == price
    assert event["proceeds"] == pytest.approx(SHARES[DELISTED] * price, rel=1e-12)


def test_our_books_do_the_same_and_reconciliation_matches(loop: dict[str, Any]) -> None:
    lake, pid = loop["lake"], loop["pid"]
    price = _close(lake, DELISTED, DELIST_DAY)
    pos = _day_rows(lake, "positions", DELIST_DAY)
    row = pos[(pos["portfolio_id"] == pid) & (pos["security_id"] == DELISTED)].iloc[0]
    assert row["quantity"] == 0.0 and row["source"] == "delisting" and row["price"] == price
    cash = _day_rows(lake, "cash", DELIST_DAY)
    balance = float(cash.loc[cash["portfolio_id"] == pid, "balance"].iloc[0])
    assert balance == pytest.approx(loop["cash"] + SHARES[DELISTED] * price, abs=1e-6)
    for day in (DELIST_DAY, NEXT_DAY):
        rec = _day_rows(lake, "reconciliation", day)
        rec = rec[rec["portfolio_id"] == pid]
        assert set(rec["status"]) == {"match"}, rec
    assert loop["results"][0].outputs["reconcile"]["breaks"] == 0
    audit = _day_rows(lake, "execution_audit", DELIST_DAY)
    assert "delisted" in set(audit["event"])


def test_no_order_for_the_delisted_name_and_none_rejected_as_invalid(
    loop: dict[str, Any],
) -> None:
    lake, pid = loop["lake"], loop["pid"]
    orders = lake.as_of(
        "orders", known_at=LATEST, valid_at=(DELIST_DAY, dt.date(2024, 5, 20))
    ).to_pandas()
    orders = orders[orders["portfolio_id"] == pid]
    assert len(orders) > 0
    assert DELISTED not in set(orders["security_id"])
    reasons = orders["reject_reason"].dropna().astype(str)
    assert not reasons.str.contains("invalid order").any(), reasons.tolist()


def test_pnl_of_the_delisted_name_is_its_last_move(loop: dict[str, Any]) -> None:
    """No fills on the delisting day: the day's P&L is the held book's price move, the
    delisted name's part being position × (delisting price − previous close)."""
    lake = loop["lake"]
    book = loop["results"][0].outputs["reconcile"]["book"]
    delisted = SHARES[DELISTED] * (
        _close(lake, DELISTED, DELIST_DAY) - _close(lake, DELISTED, OPEN)
    )
    stale = 0.0  # the unpriced and the halted name are marked at their last close: no move
    assert book["pnl"] == pytest.approx(delisted + stale, abs=1e-8 * book["nav"])
    assert book["nav"] == pytest.approx(
        loop["cash"]
        + SHARES[DELISTED] * _close(lake, DELISTED, DELIST_DAY)
        + SHARES[UNPRICED] * _close(lake, UNPRICED, OPEN)
        + SHARES[HALTED] * _close(lake, HALTED, OPEN),
        abs=1e-8 * book["nav"],
    )


def test_a_missing_price_is_marked_stale_at_the_last_close(loop: dict[str, Any]) -> None:
    lake, pid = loop["lake"], loop["pid"]
    first, second = loop["results"]
    assert first.outputs["reconcile"]["stale_marks"] == [UNPRICED, HALTED]
    assert first.outputs["reconcile"]["book"]["stale_marks"] == f"{UNPRICED},{HALTED}"
    daily = _day_rows(lake, "daily_book", DELIST_DAY)
    assert daily.loc[daily["portfolio_id"] == pid, "stale_marks"].iloc[0] == f"{UNPRICED},{HALTED}"
    report = Path(first.outputs["report"]).read_text()
    assert "Stale marks" in report and UNPRICED in report and HALTED in report
    # The next session has the unpriced name's close again; the halted one stays stale.
    assert UNPRICED not in second.outputs["reconcile"]["stale_marks"]


def test_a_held_name_without_a_close_in_the_window_does_not_stop_the_run(
    loop: dict[str, Any],
) -> None:
    """Its mark is the last close in the lake (January), not an error."""
    lake = loop["lake"]
    first = loop["results"][0]
    book = first.outputs["optimize"]
    assert book["nav"] == pytest.approx(
        loop["cash"] + sum(q * _close(lake, s, DELIST_DAY) for s, q in SHARES.items()), abs=0.01
    )
    assert HALTED in first.outputs["reconcile"]["stale_marks"]
