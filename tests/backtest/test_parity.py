"""Live/backtest parity (issue 14): the daily loop run session by session, as the DAG runs
it (file-backed paper broker, one session at a time), and the backtest over the same
sessions give identical scores, targets, orders, fills and NAV — over a period with planted
splits, dividends (two on one ex-date), acquisitions, a price correction and a late folder.

The backtest recompiles its optimizer every session here (``checkpoint_every=1``), as each
live task starts cold; with warm re-solves the two agree to solver tolerance, not bitwise.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.backtest import run_backtest
from pipelines.daily.loop import run_day
from pipelines.daily.stages import paper_broker
from pipelines.lake import Lake
from pipelines.lake.stage_state import StageState
from pipelines.portfolio import optimizer
from pipelines.testing.lakes import simulated_lake
from pipelines.timeline import LATEST, decision_cutoff, trading_calendar
from tests.backtest.test_accounting import _plant
from tests.daily.helpers import BACKTEST_CONFIG, END, START

pytestmark = [pytest.mark.unit, pytest.mark.slow]

CAL = trading_calendar()
FIRST, LAST = dt.date(2024, 5, 20), dt.date(2024, 6, 14)
LATE = dt.date(2024, 5, 29)  # its folder lands an hour after its cutoff
CORRECTED = dt.date(2024, 6, 3)  # a +5 % bad close, corrected two sessions later
CONFIG = BACKTEST_CONFIG.model_copy(update={"record_portfolio_tables": True})


def _perturb(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    out = dict(_plant(frames))
    px = out["prices"].copy()
    late = px["valid_date"] == pd.Timestamp(LATE)
    px.loc[late, "known_at"] = pd.Timestamp(decision_cutoff(LATE)) + pd.Timedelta(hours=1)
    bad = (px["valid_date"] == pd.Timestamp(CORRECTED)) & (px["security_id"] == "S000020")
    fixed = px[bad].copy()
    fixed["known_at"] = pd.Timestamp(decision_cutoff(CAL.offset(CORRECTED, 2))) - pd.Timedelta(
        hours=2
    )
    px.loc[bad, "close"] = px.loc[bad, "close"] * 1.05
    px.loc[bad, "high"] = np.maximum(px.loc[bad, "high"], px.loc[bad, "close"])
    out["prices"] = pd.concat([px, fixed], ignore_index=True)
    return out


def _lake(root: Path) -> Lake:
    return simulated_lake(
        root / "lake", universe=40, start=START, end=END, signal=0.3, seed=8, perturb=_perturb
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    live = _lake(tmp_path_factory.mktemp("live"))
    broker = paper_broker(live, CONFIG)
    for day in CAL.sessions(FIRST, LAST):
        optimizer._CACHE.clear()  # each DAG task is a fresh process: a cold solve
        broker.prices.known_at = decision_cutoff(day)  # type: ignore[attr-defined]
        run_day(live, day, CONFIG, broker, write_report=False)
    back = _lake(tmp_path_factory.mktemp("backtest"))
    result = run_backtest(back, FIRST, LAST, CONFIG, write_report=False, checkpoint_every=1)
    return {"live": live, "back": back, "run_id": result.run_id}


def _table(lake: Lake, table: str, pid: str, cols: list[str]) -> pd.DataFrame:
    frame = lake.as_of(table, known_at=LATEST, valid_at=(FIRST, CAL.offset(LAST, 1))).to_pandas()
    frame = frame[frame["portfolio_id"] == pid]
    return frame[cols].sort_values(cols).reset_index(drop=True)


@pytest.mark.parametrize(
    ("table", "cols"),
    [
        ("daily_book", ["valid_date", "nav", "cash", "pnl", "n_positions", "orders"]),
        ("orders", ["valid_date", "security_id", "side", "quantity", "status"]),
        ("fills", ["valid_date", "security_id", "side", "quantity", "price"]),
        ("positions", ["valid_date", "security_id", "quantity"]),
    ],
)
def test_live_and_backtest_books_are_identical(
    runs: dict[str, object], table: str, cols: list[str]
) -> None:
    live = _table(runs["live"], table, CONFIG.portfolio_id, cols)  # type: ignore[arg-type]
    back = _table(runs["back"], table, str(runs["run_id"]), cols)  # type: ignore[arg-type]
    assert len(live) > 0
    pd.testing.assert_frame_equal(live, back, check_exact=True)


def test_live_and_backtest_scores_and_targets_are_identical(runs: dict[str, object]) -> None:
    live, back = runs["live"], runs["back"]
    assert isinstance(live, Lake) and isinstance(back, Lake)
    for day in CAL.sessions(FIRST, LAST):
        a = StageState(live, CONFIG.portfolio_id, day)
        b = StageState(back, str(runs["run_id"]), day)
        for name in ("scores",):
            if a.has(name) or b.has(name):
                pd.testing.assert_frame_equal(
                    a.get(name).reset_index(drop=True), b.get(name).reset_index(drop=True)
                )
        if a.has("targets") or b.has("targets"):
            ta, tb = a.get("targets"), b.get("targets")
            np.testing.assert_array_equal(ta.positions["weight"], tb.positions["weight"])
