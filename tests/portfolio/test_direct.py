"""The direct cone program (pipelines.portfolio.direct) is the optimizer's problem: the same
weights as the compiled cvxpy problem at full precision, day after day (warm data update),
for long-short and long-only books, hierarchical limits and the cardinality re-solve."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from pipelines.portfolio.limits_tree import LimitTree, resolve
from pipelines.portfolio.optimizer import PortfolioOptimizer, structural_exposures, tree_attributes
from pipelines.portfolio.policy import Policy, load_policy
from pipelines.portfolio.results import OptimizationResult
from pipelines.testing.optimization import (
    full_constraint_policy,
    perturbed_day_inputs,
    synthetic_inputs,
    synthetic_risk_model,
)

pytestmark = pytest.mark.unit

TOL = 1e-5
# The reference: every solve through cvxpy, Clarabel at full precision.
FULL = {"CLARABEL": {"tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-9}}


def _pair(
    policy: Policy, rm, fixed: bool = True, limits=None
) -> tuple[PortfolioOptimizer, PortfolioOptimizer]:
    S = structural_exposures(rm) if fixed else None
    direct = PortfolioOptimizer(
        policy, rm.n_assets, rm.factor_names, fixed_exposures=S, limits=limits
    )
    ref_policy = policy.model_copy(
        update={"direct_solve": False, "solvers": ["CLARABEL"], "solver_options": FULL}
    )
    ref = PortfolioOptimizer(
        ref_policy, rm.n_assets, rm.factor_names, fixed_exposures=S, limits=limits
    )
    return direct, ref


def _diff(got: OptimizationResult, want: OptimizationResult) -> float:
    assert got.weights is not None and want.weights is not None
    return float(np.abs(got.weights - want.weights).max())


def _answered_directly(res: OptimizationResult) -> bool:
    return res.solves[-1].path == "direct" and res.solver == "CLARABEL"


@pytest.mark.parametrize("fixed", [True, False])
def test_full_constraint_set_same_weights_as_cvxpy_over_consecutive_days(fixed: bool) -> None:
    rm = synthetic_risk_model(80, 20, seed=3)
    direct, ref = _pair(full_constraint_policy(rm.factor_names), rm, fixed=fixed)
    w = None
    for day in range(4):
        inputs = perturbed_day_inputs(rm, day, w)
        got, want = direct.solve(inputs), ref.solve(inputs)
        assert got.status == want.status == "optimal", (got.message, want.message)
        assert _answered_directly(got)
        assert got.solves[-1].iterations and got.solves[-1].iterations > 0
        assert _diff(got, want) < TOL
        assert got.terms is not None and want.terms is not None
        assert got.terms.objective == pytest.approx(want.terms.objective, rel=1e-5, abs=1e-9)
        w = want.weights
    # Days 1..3 re-used the first day's Clarabel instance (data update, no new setup) and
    # never compiled the cvxpy problem.
    assert direct._direct is not None and direct._direct._solver is not None
    assert not direct.compiled


def test_long_only_book_same_weights_as_cvxpy() -> None:
    rm = synthetic_risk_model(60, 17, seed=6)
    # No turnover cap: from a flat book the whole fully invested portfolio forms today.
    direct, ref = _pair(load_policy("long_only").model_copy(update={"turnover_cap": None}), rm)
    inputs = synthetic_inputs(rm, 6, alpha_scale=0.5)
    got, want = direct.solve(inputs), ref.solve(inputs)
    assert got.ok and want.ok
    assert _answered_directly(got)
    assert _diff(got, want) < TOL


@pytest.mark.parametrize("policy_name", ["default", "long_only"])
def test_hierarchical_limit_rows_same_weights_as_cvxpy(policy_name: str) -> None:
    rm = synthetic_risk_model(90, seed=2)
    ids = list(rm.security_ids)
    rng = np.random.default_rng(2)
    attrs = pd.DataFrame(
        {
            "region": np.where(rng.random(len(ids)) < 0.6, "US", "EU"),
            "asset_class": np.where(rng.random(len(ids)) < 0.8, "equity", "reit"),
        },
        index=ids,
    )
    tree = LimitTree.model_validate(
        {
            "levels": ["region", "asset_class"],
            "portfolio": {"gross": 1.5},
            "nodes": {
                "EU": {"gross": 0.4, "net": {"lo": -0.2, "hi": 0.2}},
                "US": {"short": 0.5, "long": 0.9},
            },
        }
    )
    policy = load_policy(policy_name).model_copy(update={"limits": tree, "turnover_cap": None})
    laid = resolve(tree, rm.security_ids, tree_attributes(rm, attrs))
    direct, ref = _pair(policy, rm, limits=laid)
    inputs = synthetic_inputs(rm, 2, alpha_scale=0.5)
    got, want = direct.solve(inputs), ref.solve(inputs)
    assert got.status == want.status, (got.message, want.message)
    assert got.ok
    assert got.solves[0].path == "direct"
    assert _diff(got, want) < TOL


def test_cardinality_resolve_runs_direct_and_matches_cvxpy() -> None:
    rm = synthetic_risk_model(80, 17, seed=9)
    policy = load_policy("default").model_copy(update={"max_names": 20})
    direct, ref = _pair(policy, rm)
    inputs = synthetic_inputs(rm, 9, alpha_scale=0.5)
    got, want = direct.solve(inputs), ref.solve(inputs)
    assert got.ok and want.ok
    assert [s.stage for s in got.solves] == [s.stage for s in want.solves]
    assert "cardinality" in [s.stage for s in got.solves]
    assert all(s.path == "direct" for s in got.solves)
    assert _diff(got, want) < TOL


def test_relaxed_solves_go_through_cvxpy() -> None:
    """An infeasible day: the direct program's infeasibility certificate stops the base
    stage, and the relaxed stages (slacks open) run on the compiled cvxpy problem."""
    rm = synthetic_risk_model(60, 17, seed=2)
    policy = load_policy("default").model_copy(update={"turnover_cap": 0.002})
    direct, ref = _pair(policy, rm)
    # The book is far over a sector bound the turnover cap cannot fix in a day.
    biggest = 1 + int(np.argmax(rm.B[:, 1:12].sum(axis=0)))
    sec = rm.B[:, biggest]
    w0 = np.where(sec > 0, 0.02, 0.0)
    w0 = w0 - np.where(sec == 0, w0.sum() / (sec == 0).sum(), 0.0)
    inputs = synthetic_inputs(rm, 2, current_weights=w0)
    inputs = replace(inputs, adv=inputs.adv * 0 + 1e10)
    got, want = direct.solve(inputs), ref.solve(inputs)
    assert got.status == want.status == "relaxed"
    assert got.solves[0].path == "direct" and got.solves[0].status == "infeasible"
    assert got.solves[-1].path == "cvxpy"
    assert _diff(got, want) < 1e-4


def test_direct_solve_can_be_switched_off() -> None:
    rm = synthetic_risk_model(30, 17, seed=4)
    policy = load_policy("default").model_copy(update={"direct_solve": False})
    opt = PortfolioOptimizer(policy, 30, rm.factor_names)
    res = opt.solve(synthetic_inputs(rm, 4))
    assert res.ok and opt._direct is None
    assert {s.path for s in res.solves} == {"cvxpy"}
    assert res.solves[-1].iterations and res.solves[-1].iterations > 0


def test_beta_through_factors_and_explicit_beta_day_same_weights_as_cvxpy() -> None:
    """The predicted beta (B·c) is written as cᵀy, and the net band sits on the market
    factor's y; a day with an explicit beta (not in B's span) rebuilds the program with a
    row over all names, and the next predicted-beta day goes back: every day the same
    weights as cvxpy."""
    rm = synthetic_risk_model(70, 17, seed=5)
    direct, ref = _pair(full_constraint_policy(rm.factor_names), rm)
    assert direct._direct is not None and direct._direct.beta_via_factors
    nnz: list[int] = []
    rng = np.random.default_rng(5)
    w = None
    for day, explicit in enumerate([False, True, False]):
        inputs = perturbed_day_inputs(rm, day, w)
        if explicit:
            beta = pd.Series(rng.uniform(0.5, 1.5, rm.n_assets), index=list(rm.security_ids))
            inputs = replace(inputs, beta=beta)
        got, want = direct.solve(inputs), ref.solve(inputs)
        assert got.status == want.status == "optimal", (got.message, want.message)
        assert _answered_directly(got)
        assert direct._direct.beta_via_factors is not explicit
        assert _diff(got, want) < TOL
        nnz.append(direct._direct.dimensions()["nnz_A"])
        w = want.weights
    # βᵀw = b over all names (N + 1 entries, band on b: 2) instead of the band on cᵀy (2K).
    K = len(rm.factor_names)
    assert nnz[1] - nnz[0] == rm.n_assets + 3 - 2 * K and nnz[2] == nnz[0]


def test_direct_days_never_build_the_cvxpy_problem() -> None:
    """The cvxpy problem is built on first use: days answered directly never build it;
    asking for it builds it once, over the same parameters the direct program reads."""
    rm = synthetic_risk_model(40, 17, seed=8)
    opt = PortfolioOptimizer(
        load_policy("default"), rm.n_assets, rm.factor_names, structural_exposures(rm)
    )
    res = opt.solve(synthetic_inputs(rm, 1))
    assert _answered_directly(res) and opt._problem is None
    assert res.terms is not None and res.terms.penalty == 0.0
    problem = opt.problem
    assert problem is opt.problem and problem.is_dpp()
    assert {p.id for p in problem.parameters()} >= {opt.p_alpha.id, opt.p_lo.id, opt.p_hi.id}
