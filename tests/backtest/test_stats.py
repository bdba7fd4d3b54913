"""Backtest statistics: the bootstrap interval covers the true Sharpe about 95 % of the
time, the deflated Sharpe does not sell the luckiest of 20 null variants, and the
standard metrics agree with their definitions (issue 16)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipelines.backtest.stats import (
    annual_sharpe,
    deflated_sharpe_ratio,
    drawdown_periods,
    max_drawdown,
    monte_carlo,
    monthly_returns,
    performance,
    sharpe_confidence_interval,
)

pytestmark = pytest.mark.unit

MU, SD = 0.0005, 0.01  # daily; true annual Sharpe = 0.05 · √252 ≈ 0.79
TRUE_SHARPE = MU / SD * math.sqrt(252)


def test_bootstrap_interval_covers_the_true_sharpe_about_95_percent() -> None:
    seeds = 200
    covered = 0
    for seed in range(seeds):
        r = np.random.default_rng(seed).normal(MU, SD, 500)
        ci = sharpe_confidence_interval(r, n_boot=400, block=5.0, seed=seed)
        covered += ci.low <= TRUE_SHARPE <= ci.high
    # ±3 standard errors of a 95 % proportion over 200 seeds
    assert 0.95 - 0.046 <= covered / seeds <= 0.95 + 0.046, covered


def test_deflated_sharpe_of_the_best_null_variant_is_not_significant() -> None:
    significant = 0
    runs = 40
    for seed in range(runs):
        rng = np.random.default_rng(1000 + seed)
        trials = rng.normal(0.0, SD, (20, 500))
        per_period = trials.mean(axis=1) / trials.std(axis=1, ddof=1)
        best = trials[int(np.argmax(per_period))]
        assert annual_sharpe(best) > 0  # the luckiest variant looks good undeflated
        dsr = deflated_sharpe_ratio(
            best, n_trials=20, trial_sharpes_variance=float(per_period.var(ddof=1))
        )
        significant += dsr > 0.95
    assert significant <= 0.1 * runs, significant


def test_a_real_edge_survives_deflation() -> None:
    rng = np.random.default_rng(7)
    r = rng.normal(0.003, SD, 750)  # annual Sharpe ≈ 4.8 over three years
    # the per-period Sharpe of a null trial of 750 sessions varies by about 1/750
    assert deflated_sharpe_ratio(r, n_trials=20, trial_sharpes_variance=1 / 750) > 0.99


def test_performance_matches_the_definitions() -> None:
    rng = np.random.default_rng(3)
    r = pd.Series(rng.normal(MU, SD, 300), index=pd.bdate_range("2024-01-02", periods=300))
    p = performance(r)
    assert p.sharpe == pytest.approx(annual_sharpe(r.to_numpy()), rel=1e-12)
    assert p.cagr == pytest.approx(float(np.prod(1 + r)) ** (252 / 300) - 1, rel=1e-9)
    assert p.annual_return_arithmetic == pytest.approx(252 * r.mean(), rel=1e-12)
    assert p.annual_vol == pytest.approx(r.std(ddof=1) * math.sqrt(252), rel=1e-12)
    assert p.sharpe_low < p.sharpe < p.sharpe_high
    assert p.max_drawdown == pytest.approx(max_drawdown(r.to_numpy()))
    assert p.calmar == pytest.approx(p.cagr / p.max_drawdown)


def test_max_drawdown_counts_a_first_day_loss() -> None:
    assert max_drawdown(np.array([-0.1, 0.05])) == pytest.approx(0.1)


def test_monte_carlo_and_tables() -> None:
    rng = np.random.default_rng(5)
    r = pd.Series(rng.normal(0.001, SD, 400), index=pd.bdate_range("2023-01-02", periods=400))
    mc = monte_carlo(r.to_numpy(), paths=500, horizon=252)
    assert mc.sharpe_p05 < mc.sharpe_p50 < mc.sharpe_p95
    assert mc.wealth_p05 < mc.wealth_p50 < mc.wealth_p95
    assert 0.0 <= mc.probability_of_loss < 0.5
    better = monte_carlo(r.to_numpy() + 0.001, paths=500, horizon=252)
    assert better.probability_of_loss < mc.probability_of_loss
    assert 0 < mc.drawdown_p50 <= mc.drawdown_p95
    table = monthly_returns(r)
    assert list(table.index) == [2023, 2024] and table.shape[1] == 12
    dd = drawdown_periods(r, top=3)
    assert len(dd) == 3 and (dd["depth"].diff().dropna() <= 0).all()
