"""Targets: share rounding, minimum trade notional, frames, failed optimizations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.portfolio.optimizer import get_optimizer
from pipelines.portfolio.policy import load_policy
from pipelines.portfolio.results import OptimizationResult
from pipelines.portfolio.synthetic import synthetic_inputs, synthetic_risk_model
from pipelines.portfolio.targets import TARGET_COLUMNS, build_targets, round_to_shares


def test_round_to_lots_and_drop_small_trades() -> None:
    w = np.array([0.010, -0.0203, 0.0, 0.00101, 0.0])
    p = np.array([50.0, 20.0, 10.0, 100.0, 30.0])
    cur = np.array([190.0, 0.0, 500.0, 10.0, 0.0])
    target, trade = round_to_shares(w, p, cur, 1e6, lot_size=10, min_trade_notional=1000.0)
    # 0.01·1e6/50 = 200 (trade 10 sh = $500 < $1000 → dropped, keep 190)
    assert target[0] == 190 and trade[0] == 0
    # −0.0203·1e6/20 = −1015 → −1020 in lots of 10
    assert target[1] == -1020 and trade[1] == -1020
    # closing trade always kept even if small
    assert target[2] == 0 and trade[2] == -500
    # 0.00101·1e6/100 = 10.1 → 10 (no trade)
    assert target[3] == 10 and trade[3] == 0
    assert np.all(target % 10 == 0)
    with pytest.raises(ValueError):
        round_to_shares(w, np.array([50.0, 0.0, 1, 1, 1]), cur, 1e6)


def _solved() -> tuple[OptimizationResult, object]:
    rm = synthetic_risk_model(40, 17, seed=1)
    opt = get_optimizer(load_policy("default"), 40, rm.factor_names)
    res = opt.solve(synthetic_inputs(rm, 1, alpha_scale=0.5))
    assert res.ok
    return res, rm


def test_build_targets_frame_and_risk() -> None:
    res, rm = _solved()
    ids = list(res.security_ids)
    prices = pd.Series(np.linspace(10, 200, 40), index=ids)
    cur = pd.Series(0.0, index=ids)
    tp = build_targets(res, "pf1", prices, cur, 1e8, risk_model=rm, min_trade_notional=5000)
    df = tp.to_frame()
    assert tuple(df.columns) == TARGET_COLUMNS
    assert len(df) == 40 and (df["portfolio_id"] == "pf1").all()
    assert np.allclose(df["target_shares"], np.round(df["target_shares"]))
    assert np.allclose(df["trade_shares"], df["target_shares"] - df["current_shares"])
    traded = df["trade_shares"] != 0
    assert (df.loc[traded, "trade_shares"].abs() * df.loc[traded, "price"] >= 5000).all()
    assert tp.risk is not None
    assert tp.risk.total_var == pytest.approx(df["risk_contribution"].sum(), rel=1e-9)
    assert tp.risk.factor_var + tp.risk.specific_var == pytest.approx(tp.risk.total_var)
    s = tp.summary()
    assert s["status"] == "optimal" and s["solver"] == "CLARABEL"
    assert {"alpha_term", "risk_term", "cost_term", "holding_term", "solve_time"} <= set(s)
    solves = res.solves_frame("pf1")
    assert {"stage", "solver", "status", "solve_time"} <= set(solves.columns)


def test_failed_optimization_holds_positions() -> None:
    res, _ = _solved()
    failed = OptimizationResult(
        date=res.date,
        policy="default",
        security_ids=res.security_ids,
        status="infeasible",
        weights=None,
        current_weights=res.current_weights,
        alpha=res.alpha,
        solves=res.solves,
        message="hard constraints infeasible",
    )
    ids = list(res.security_ids)
    cur = pd.Series(100.0, index=ids)
    tp = build_targets(failed, "pf1", pd.Series(10.0, index=ids), cur, 1e6)
    df = tp.to_frame()
    assert (df["trade_shares"] == 0).all() and (df["target_shares"] == 100).all()
    assert (df["status"] == "infeasible").all()


def test_missing_price_raises_naming_security() -> None:
    res, _ = _solved()
    ids = list(res.security_ids)
    prices = pd.Series(10.0, index=ids).drop(ids[4])
    with pytest.raises(ValueError, match=ids[4]):
        build_targets(res, "pf1", prices, pd.Series(dtype=float), 1e6)
