"""The daily loop's stages on a small simulated market: constraints, orders, fills,
reconciliation, the book, idempotent re-runs and the PM's rejection."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from pipelines.daily import stages
from pipelines.execution.records import read_day
from pipelines.lake import Lake
from pipelines.lake.stage_state import MissingStageStateError, StageState
from pipelines.portfolio.policy import load_policy
from pipelines.timeline import LATEST, trading_calendar
from tests.daily.helpers import CONFIG, LOOP_DAYS, copy_root, run_loop

pytestmark = [pytest.mark.unit, pytest.mark.slow]


def test_targets_respect_the_policy(loop_root: Path) -> None:
    policy = load_policy(CONFIG.policy)
    for day in LOOP_DAYS:
        state = StageState(Lake(str(loop_root / "lake")), CONFIG.portfolio_id, day)
        targets = state.get("targets")
        assert targets.optimization.status == "optimal"
        w = targets.optimization.weights
        assert np.abs(w).sum() <= policy.gross_leverage + 1e-6
        assert np.abs(w).max() <= policy.max_position + 1e-6
        assert policy.net_exposure.lo - 1e-6 <= w.sum() <= policy.net_exposure.hi + 1e-6
        assert (targets.positions["target_shares"] != 0).sum() > 10


def test_orders_fill_and_reconcile(loop_root: Path) -> None:
    lake = Lake(str(loop_root / "lake"))
    pid = CONFIG.portfolio_id
    first, second, third = LOOP_DAYS
    orders = read_day(lake, "orders", second, pid)  # placed at the close of `first`
    assert len(orders) > 10 and set(orders["status"]) <= {"accepted", "rejected"}
    fills = read_day(lake, "fills", second, pid)
    assert len(fills) > 0 and set(fills["client_order_id"]) <= set(orders["client_order_id"])
    recon = read_day(lake, "reconciliation", third, pid)
    assert (recon["status"] == "break").sum() == 0, recon[recon["status"] == "break"]
    book = lake.as_of(
        "daily_book",
        known_at=LATEST,
        valid_at=(first, third),
    ).to_pandas()
    assert list(book["valid_date"]) == list(LOOP_DAYS)
    assert book["n_positions"].iloc[-1] > 10
    assert book["nav"].iloc[0] == pytest.approx(CONFIG.initial_capital, rel=0.02)
    # The portfolio stage's tables hold the day's risk model and targets.
    for table in ("target_portfolios", "solve_log", "risk_exposures"):
        rows = lake.as_of(table, known_at=LATEST, valid_at=third)
        assert rows.num_rows > 0, table
    # The day's P&L splits into holding (factor + specific) and trading.
    last = book.iloc[-1]
    parts = last["pnl_factor"] + last["pnl_specific"] + last["pnl_trading"]
    assert parts == pytest.approx(last["pnl"], rel=1e-6, abs=1e-3)


def test_rerunning_a_day_adds_nothing(loop_root: Path, tmp_path: Path) -> None:
    root = copy_root(loop_root, tmp_path / "copy")
    lake = Lake(str(root / "lake"))
    tables = ("orders", "order_events", "fills", "positions", "cash", "daily_book")
    before = {t: lake.table(t).version() for t in tables}
    run_loop(root, (LOOP_DAYS[-1],))
    lake = Lake(str(root / "lake"))
    assert {t: lake.table(t).version() for t in tables} == before


def test_a_rejection_sends_nothing_and_is_audited(loop_root: Path, tmp_path: Path) -> None:
    root = copy_root(loop_root, tmp_path / "copy")
    lake = Lake(str(root / "lake"))
    manual = CONFIG.model_copy(
        update={"approval": CONFIG.approval.model_copy(update={"auto_approve": False})}
    )
    day = trading_calendar().next_session(LOOP_DAYS[-1])
    ctx = stages.DayContext(
        lake=lake,
        day=day,
        config=manual,
        broker=stages.paper_broker(lake, manual),
        scores_source=stages.score_source(manual),
    )
    for stage in (stages.research, stages.risk_model, stages.optimize, stages.pretrade):
        stage(ctx)
    # No answer before the timeout: the declared default applies, and it is "no orders".
    assert stages.approve(ctx) == stages.REJECTED
    assert stages.execute(ctx)["sent"] == 0
    assert read_day(lake, "orders", ctx.trade_date, manual.portfolio_id).empty
    audit = read_day(lake, "execution_audit", ctx.trade_date, manual.portfolio_id)
    rejected = audit[audit["event"] == "pm_rejected"]
    assert len(rejected) == 1
    assert "timeout" in json.loads(rejected["detail"].iloc[0])["actor"]


def test_a_stage_without_its_input_names_it(tmp_path: Path) -> None:
    state = StageState(Lake(str(tmp_path / "lake")), "p", dt.date(2024, 6, 3))
    with pytest.raises(MissingStageStateError, match="risk_model"):
        state.get("risk_model")
