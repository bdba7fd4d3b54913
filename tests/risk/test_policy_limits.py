"""A policy and its pre-trade limits agree: the shipped pairs load consistent, the real
optimizer's whole-share targets pass pre-trade with 0 rejections over several sessions
of a demo-sized synthetic universe, and a pair that cannot both hold is refused in one
line naming the limit and the policy (issue 17)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from pipelines.execution.orders import generate_orders, run_pretrade
from pipelines.portfolio.limits_tree import Band, LimitTree
from pipelines.portfolio.policy import POLICY_DIR, Policy, load_policy
from pipelines.portfolio.rebalance import RebalanceInputs, rebalance
from pipelines.portfolio.risk_model import SECTOR_PREFIX, RiskModel
from pipelines.risk.consistency import (
    LimitsConsistencyError,
    load_policy_with_limits,
    reconcile,
)
from pipelines.risk.pretrade import LIMITS_DIR, BookState, RiskLimits, load_limits
from pipelines.testing.optimization import synthetic_risk_model

pytestmark = pytest.mark.unit

SHIPPED_POLICIES = sorted(p.stem for p in POLICY_DIR.glob("*.yaml"))
SHIPPED_LIMITS = sorted(p.stem for p in LIMITS_DIR.glob("*.yaml"))
# The demo's size: 500 securities, a fresh paper account of $10M.
N_DEMO = 500
NAV = 10_000_000.0


def as_dict(s: pd.Series) -> dict[str, float]:
    return {str(k): float(v) for k, v in s.items()}


@dataclass
class Market:
    """A synthetic universe with prices, ADV (shares) and sectors, as the daily loop sees it."""

    model: RiskModel
    prices: pd.Series
    adv_shares: pd.Series
    volatility: pd.Series
    sectors: dict[str, str]


def market(n: int = N_DEMO, seed: int = 3) -> Market:
    rm = synthetic_risk_model(n, seed=seed)
    ids = list(rm.security_ids)
    rng = np.random.default_rng(seed + 1)
    px = pd.Series(rng.uniform(10, 200, n), index=ids)
    adv = pd.Series(np.exp(rng.normal(np.log(3e7), 1.0, n)), index=ids) / px
    cols = [k for k, f in enumerate(rm.factor_names) if f.startswith(SECTOR_PREFIX)]
    sectors = {
        s: rm.factor_names[cols[int(np.argmax(rm.B[i, cols]))]][len(SECTOR_PREFIX) :]
        for i, s in enumerate(ids)
    }
    vol = pd.Series(np.sqrt(rm.D + 1e-4), index=ids)
    return Market(rm, px, adv, vol, sectors)


def run_sessions(
    policy: Policy, limits: RiskLimits, m: Market, sessions: int = 3
) -> list[pd.DataFrame]:
    """The daily loop's optimize → orders → pre-trade for ``sessions`` days, the book
    filled at the targets each day; the failed audit rows of each session."""
    ids = list(m.model.security_ids)
    shares = pd.Series(0.0, index=ids)
    failed = []
    for day in range(sessions):
        when = dt.date(2024, 1, 2) + dt.timedelta(days=day)
        rng = np.random.default_rng(100 + day)
        alpha = pd.Series(0.2 * np.sqrt(m.model.D) * rng.standard_normal(len(ids)), index=ids)
        targets = rebalance(
            RebalanceInputs(
                day=when,
                portfolio_id="pf",
                policy=policy,
                risk_model=m.model,
                alpha=alpha,
                prices=m.prices,
                current_shares=shares,
                nav=NAV,
                adv_shares=m.adv_shares,
                volatility=m.volatility,
            )
        )
        assert targets.optimization.status in ("optimal", "relaxed"), targets.optimization
        orders = generate_orders(
            targets,
            as_dict(shares),
            "pf",
            when,
            adv=as_dict(m.adv_shares),
            sectors=m.sectors,
            prices=as_dict(m.prices),
        )
        book = BookState(
            nav=NAV, positions=as_dict(shares), prices=as_dict(m.prices), sectors=m.sectors
        )
        verdict = run_pretrade(orders, limits, book)
        failed.append(verdict.audit[~verdict.audit["passed"].astype(bool)])
        new = targets.positions.set_index("security_id")["target_shares"]
        shares = new.reindex(ids).fillna(0.0)
    return failed


@pytest.mark.parametrize("limits_name", SHIPPED_LIMITS)
@pytest.mark.parametrize("policy_name", SHIPPED_POLICIES)
def test_shipped_policies_and_limits_are_consistent(policy_name: str, limits_name: str) -> None:
    policy, limits = load_policy_with_limits(policy_name, limits_name)
    # Every limit the optimizer can honour is now part of the policy.
    assert policy.limits == limits.tree()
    assert policy.participation is not None and policy.participation <= limits.max_adv_pct
    assert policy.max_trade_notional == limits.max_order_notional
    assert policy.max_trade_shares == limits.max_order_shares
    assert reconcile(policy, limits) == policy  # idempotent


@pytest.mark.parametrize("policy_name", SHIPPED_POLICIES)
def test_shipped_policy_targets_pass_pretrade_with_no_rejection(policy_name: str) -> None:
    """The real optimizer, whole-share targets, order generation and pre-trade on a
    500-name universe, three sessions from a flat book: nothing is rejected."""
    policy, limits = load_policy_with_limits(policy_name, "default")
    failed = run_sessions(policy, limits, market())
    for day, rows in enumerate(failed):
        assert rows.empty, f"session {day}: {rows[['security_id', 'rule', 'reason']].head()}"


def test_without_reconciliation_the_long_only_book_breaches_sector_limits() -> None:
    """The same run with the policy alone (what shipped before): pre-trade rejects on the
    sector limit the optimizer never saw — the check above is not vacuous."""
    limits = load_limits("default")
    failed = run_sessions(load_policy("long_only"), limits, market(), sessions=1)
    assert "sector_exposure" in set(pd.concat(failed)["rule"])


def test_inconsistent_pair_is_refused_in_one_line_naming_limit_and_policy() -> None:
    # The limits shipped before issue 17: a ±10 % net band, with a fully invested book.
    limits = load_limits("default").model_copy(update={"net_exposure": Band(lo=-0.10, hi=0.10)})
    with pytest.raises(LimitsConsistencyError) as err:
        reconcile(load_policy("long_only"), limits, "limits default")
    msg = str(err.value)
    assert "\n" not in msg
    assert "portfolio net [-0.100, +0.100]" in msg and "policy long_only" in msg
    assert "limits default" in msg


@pytest.mark.parametrize(
    ("update", "names"),
    [
        ({"max_gross_exposure": 0.5}, "portfolio gross 0.500"),
        (
            {
                "hierarchy": LimitTree.model_validate(
                    {"portfolio": {"long": 0.9}, "levels": ["sector"]}
                )
            },
            "portfolio long 0.900",
        ),
        ({"max_sector_exposure": None, "sector_overrides": {}}, None),
    ],
)
def test_each_refusal_names_its_limit(update: dict, names: str | None) -> None:
    limits = load_limits("default").model_copy(update=update)
    if names is None:
        reconcile(load_policy("long_only"), limits)  # fewer limits: still consistent
        return
    with pytest.raises(LimitsConsistencyError, match=names):
        reconcile(load_policy("long_only"), limits)


def test_sector_band_disjoint_from_policy_sector_bounds_is_refused() -> None:
    policy = load_policy("default").model_copy(update={"sector_bounds": Band(lo=0.2, hi=0.3)})
    with pytest.raises(LimitsConsistencyError, match=r"sector net \[-0.100, \+0.100\]"):
        reconcile(policy, load_limits("default"))
