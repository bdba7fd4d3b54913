"""A backtest runs through an acquisition of a held name: the position becomes cash at the
delisting price on the delisting session, in the in-memory broker and in our books.

Simulated market seed 8 (40 names): ``S000033`` is acquired, its last trading day and
delisting date 2024-05-10. Over 2024-04-15..2024-05-13 the optimizer holds it short.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from pipelines.backtest import run_backtest
from pipelines.lake import Lake
from pipelines.timeline import LATEST
from tests.daily.helpers import BACKTEST_CONFIG, END, START

pytestmark = [pytest.mark.unit, pytest.mark.slow]

DELISTED = "S000033"
FIRST, LAST = dt.date(2024, 4, 15), dt.date(2024, 5, 13)
PREV, DELIST_DAY = dt.date(2024, 5, 9), dt.date(2024, 5, 10)


def _rows(lake: Lake, table: str, run_id: str, days: tuple[dt.date, dt.date]) -> pd.DataFrame:
    frame = lake.as_of(table, known_at=LATEST, valid_at=days).to_pandas()
    return frame[frame["portfolio_id"] == run_id]


def _num(value: object) -> float:
    return float(value)  # type: ignore[arg-type]


def _close(lake: Lake, day: dt.date) -> float:
    frame = lake.as_of("prices", known_at=LATEST, valid_at=day).to_pandas()
    return float(frame.loc[frame["security_id"] == DELISTED, "close"].iloc[0])


def test_backtest_cashes_out_a_delisted_holding(
    tmp_path: Path, make_simulated_lake: Callable[..., Lake]
) -> None:
    lake = make_simulated_lake(
        tmp_path / "lake", universe=40, start=START, end=END, signal=0.3, seed=8
    )
    result = run_backtest(lake, FIRST, LAST, BACKTEST_CONFIG, write_report=False)
    run_id = result.run_id
    assert result.daily["date"].iloc[-1] == LAST  # ran through

    pos = _rows(lake, "positions", run_id, (PREV, LAST))
    pos = pos[pos["security_id"] == DELISTED].set_index("valid_date")
    held = _num(pos.at[PREV, "quantity"])
    assert held != 0.0  # the book holds the name into its delisting session
    out = pos.loc[DELIST_DAY]
    price = _close(lake, DELIST_DAY)
    assert out["quantity"] == 0.0 and out["source"] == "delisting" and out["price"] == price

    # Reconciliation: our books and the in-memory broker agree on every session.
    rec = _rows(lake, "reconciliation", run_id, (FIRST, LAST))
    assert set(rec["status"]) == {"match"}, rec[rec["status"] != "match"]

    # Cash: the day's change beyond its fills is the delisting's proceeds.
    cash = _rows(lake, "cash", run_id, (PREV, DELIST_DAY)).set_index("valid_date")
    proceeds = (
        _num(cash.at[DELIST_DAY, "balance"])
        - _num(cash.at[PREV, "balance"])
        - _num(cash.at[DELIST_DAY, "trade_flow"])
        + _num(cash.at[DELIST_DAY, "commission"])
    )
    assert proceeds == pytest.approx(held * price, abs=1e-6)
    # The name's P&L on the session: proceeds − its previous mark = position × Δclose.
    name_pnl = proceeds - held * _close(lake, PREV)
    assert name_pnl == pytest.approx(held * (price - _close(lake, PREV)), abs=1e-6)

    audit = _rows(lake, "execution_audit", run_id, (DELIST_DAY, DELIST_DAY))
    event = audit[(audit["event"] == "delisted") & (audit["security_id"] == DELISTED)]
    assert len(event) == 1 and "ACQUIRED" in str(event["detail"].iloc[0])

    # No order for it after its delisting; no order rejected as invalid.
    orders = _rows(lake, "orders", run_id, (FIRST, LAST + dt.timedelta(days=7)))
    late = orders[pd.to_datetime(orders["valid_date"]).dt.date > DELIST_DAY]
    assert DELISTED not in set(late["security_id"])
    reasons = orders["reject_reason"].dropna().astype(str)
    assert not reasons.str.contains("invalid order").any(), reasons.tolist()
