"""A 3-level limit tree (region → asset class → sector) is honoured by the optimizer and
by pre-trade alike, from one declaration (issue 17)."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines.execution.orders import generate_orders, run_pretrade
from pipelines.portfolio.limits_tree import (
    DEFAULT_NODE,
    LIMIT_TOL,
    LimitTree,
    resolve,
)
from pipelines.portfolio.optimizer import (
    get_optimizer,
    optimize,
    structural_exposures,
    tree_attributes,
)
from pipelines.portfolio.policy import load_policy
from pipelines.portfolio.targets import build_targets
from pipelines.risk.consistency import reconcile
from pipelines.risk.pretrade import BookState, Order, RiskLimits, check_orders, load_limits
from pipelines.testing.optimization import synthetic_inputs, synthetic_risk_model

pytestmark = pytest.mark.unit

N = 300
NAV = 10_000_000.0


def as_dict(s: pd.Series) -> dict[str, float]:
    return {str(k): float(v) for k, v in s.items()}


# Three levels below the portfolio; a bound at each, every one binding on this universe
# (the unconstrained books breach them, see test_the_tree_binds_at_every_level).
TREE = {
    "levels": ["region", "asset_class", "sector"],
    "portfolio": {"gross": 2.0},
    "nodes": {
        "EU": {"gross": 0.5, "net": {"lo": -0.3, "hi": 0.3}},
        "US": {"short": 0.6},
        "US/reit": {"gross": 0.1, "net": {"lo": -0.02, "hi": 0.02}},
    },
    "each": {"sector": {"gross": 0.15, "net": {"lo": -0.10, "hi": 0.10}}},
}


def attributes(ids: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    return pd.DataFrame(
        {
            "region": np.where(rng.random(len(ids)) < 0.6, "US", "EU"),
            "asset_class": np.where(rng.random(len(ids)) < 0.8, "equity", "reit"),
        },
        index=ids,
    )


def limits_with_tree(tmp_path: Path) -> RiskLimits:
    """The shipped default limits plus the tree, through a YAML file like a user's."""
    data = yaml.safe_load((Path("pipelines/risk/limits/default.yaml")).read_text())
    data["hierarchy"] = TREE
    path = tmp_path / "tree.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_limits(path)


def solve(policy_name: str, limits: RiskLimits | None, seed: int = 0) -> tuple:
    rm = synthetic_risk_model(N, seed=seed)
    ids = list(rm.security_ids)
    attrs = attributes(ids)
    # No turnover cap: from a flat book the whole portfolio forms on day one.
    policy = load_policy(policy_name).model_copy(update={"turnover_cap": None})
    if limits is not None:
        policy = reconcile(policy, limits)
    inputs = synthetic_inputs(rm, seed, portfolio_value=NAV, alpha_scale=0.3)
    rng = np.random.default_rng(seed)
    prices = pd.Series(rng.uniform(10, 200, N), index=ids)
    inputs = replace(inputs, attributes=attrs, prices=prices)
    result = optimize(policy, inputs)
    return rm, attrs, policy, inputs, prices, result


@pytest.mark.parametrize("policy_name", ["default", "long_only"])
def test_optimizer_honours_every_node_of_a_three_level_tree(
    policy_name: str, tmp_path: Path
) -> None:
    limits = limits_with_tree(tmp_path)
    tree = limits.tree()
    assert tree.levels == ("region", "asset_class", "sector")
    rm, attrs, policy, _, _, result = solve(policy_name, limits)
    assert result.status in ("optimal", "relaxed"), result.message
    laid = resolve(tree, rm.security_ids, tree_attributes(rm, attrs))
    report = laid.report(result.weights)
    # Every node of every level within tolerance (the solver's own residual: far inside).
    assert report["excess"].max() <= 1e-5, report.sort_values("excess").tail()
    assert {"portfolio", "region", "asset_class", "sector"} <= set(report["level"])
    # Relaxations only ever widen the policy's soft groups, never a limit.
    assert {r.group for r in result.relaxations} <= set(policy.relaxation_order)


@pytest.mark.parametrize("policy_name", ["default", "long_only"])
def test_the_tree_binds_at_every_level(policy_name: str, tmp_path: Path) -> None:
    """Without the tree the same problem breaches a node at each of the three levels;
    with it, nodes at each level sit at their bound."""
    limits = limits_with_tree(tmp_path)
    tree = limits.tree()
    rm, attrs, _, _, _, free = solve(policy_name, None)
    laid = resolve(tree, rm.security_ids, tree_attributes(rm, attrs))
    breached = laid.breaches(free.weights)
    assert {"region", "asset_class", "sector"} <= set(breached["level"]), breached
    _, _, _, _, _, bound = solve(policy_name, limits)
    report = laid.report(bound.weights)
    at_bound = report[
        (np.minimum(report["hi"] - report["value"], report["value"] - report["lo"]) < 1e-4)
    ]
    assert {"region", "asset_class", "sector"} <= set(at_bound["level"]), at_bound


@pytest.mark.parametrize("policy_name", ["default", "long_only"])
def test_rounded_targets_pass_pretrade_checked_against_the_same_tree(
    policy_name: str, tmp_path: Path
) -> None:
    limits = limits_with_tree(tmp_path)
    rm, attrs, policy, inputs, prices, result = solve(policy_name, limits)
    ids = list(rm.security_ids)
    targets = build_targets(
        result, "pf", prices, pd.Series(0.0, index=ids), NAV, risk_model=rm, policy=policy
    )
    sectors = {str(k): str(v) for k, v in tree_attributes(rm, attrs)["sector"].items()}
    adv_shares = as_dict(inputs.adv / prices)
    orders = generate_orders(
        targets, {}, "pf", dt.date(2024, 1, 2), adv=adv_shares, sectors=sectors
    )
    book = BookState(
        nav=NAV,
        prices=as_dict(prices),
        sectors=sectors,
        attributes=attrs.to_dict(orient="index"),
    )
    verdict = run_pretrade(orders, limits, book)
    failed = verdict.audit[~verdict.audit["passed"].astype(bool)]
    assert failed.empty, failed[["security_id", "rule", "reason"]]
    # Pre-trade checked nodes of every level of the tree.
    assert {
        "max_gross_exposure",
        "net_exposure",
        "region_gross",
        "region_exposure",
        "asset_class_gross",
        "asset_class_exposure",
        "sector_gross",
        "sector_exposure",
    } <= set(verdict.audit["rule"])


def test_pretrade_flags_a_hand_made_book_breaching_a_mid_level_node(tmp_path: Path) -> None:
    """US/reit (asset-class level, net ≤ 2 %) holds 1.5 %; buying 1 % of a US reit in a
    sector whose leaf holds nothing breaches only that node — rejected, the path named."""
    limits = limits_with_tree(tmp_path)
    attrs = {
        "R1": {"region": "US", "asset_class": "reit"},
        "R2": {"region": "US", "asset_class": "reit"},
        "R3": {"region": "US", "asset_class": "reit"},
        "E1": {"region": "US", "asset_class": "equity"},
    }
    sectors = {"R1": "RealEstate", "R2": "Financials", "R3": "Utilities", "E1": "Utilities"}
    book = BookState(
        nav=NAV,
        positions={"R1": 1_000.0, "R2": 500.0, "E1": 10_000.0},
        prices={"R1": 100.0, "R2": 100.0, "R3": 100.0, "E1": 50.0},
        sectors=sectors,
        attributes=attrs,
    )

    def buy(oid: str, sid: str, qty: float) -> Order:
        return Order(oid, "pf", dt.date(2024, 1, 2), sid, "buy", qty, 100.0, 1e7, sectors[sid])

    res = check_orders([buy("o1", "R3", 1_000.0), buy("o2", "E1", 1_000.0)], limits, book)
    assert res.rejected_rules("o1") == ["asset_class_exposure"]
    reason = next(b.reason for o, bs in res.rejected for b in bs if o.client_order_id == "o1")
    assert "portfolio/US/reit" in reason and "+0.0250" in reason
    # The equity order in the same sector leaf (US/equity/Utilities) is not affected.
    assert [o.client_order_id for o in res.accepted] == ["o2"]
    # Selling the reit down is always allowed (de-risking).
    sell = Order("o3", "pf", dt.date(2024, 1, 2), "R1", "sell", 500.0, 100.0, 1e7, "RealEstate")
    assert check_orders([sell], limits, book).accepted


def test_flat_limits_file_is_a_one_level_tree() -> None:
    limits = load_limits("default")
    tree = limits.tree()
    assert tree.levels == ("sector",)
    assert tree.portfolio.gross == limits.max_gross_exposure
    assert tree.portfolio.net == limits.net_exposure
    assert tree.each["sector"].net is not None
    assert tree.each["sector"].net.hi == limits.max_sector_exposure
    with_override = limits.model_copy(update={"sector_overrides": {"Energy": 0.05}})
    assert with_override.tree().node_limits(("Energy",)).net.hi == 0.05  # type: ignore[union-attr]
    # Region and asset class absent from the security master: one node, every security.
    assert LimitTree(levels=("region", "sector")).path_of({"sector": "Energy"}) == (
        DEFAULT_NODE,
        "Energy",
    )


def test_tree_declaration_errors_are_caught_at_load() -> None:
    with pytest.raises(ValueError, match="levels"):
        LimitTree.model_validate({"levels": ["sector", "region"]})
    with pytest.raises(ValueError, match="path of 1 to 1"):
        LimitTree.model_validate({"levels": ["sector"], "nodes": {"US/Energy": {"gross": 1}}})
    with pytest.raises(ValueError, match="each"):
        LimitTree.model_validate({"levels": ["sector"], "each": {"region": {"gross": 1}}})


def test_warm_resolve_with_the_tree_reuses_the_compiled_problem(tmp_path: Path) -> None:
    """The tree's rows are compiled in once per universe; the next day re-applies
    parameters only (same problem object), and stays within the budget of a warm solve."""
    limits = limits_with_tree(tmp_path)
    rm, attrs, policy, inputs, _, first = solve("default", limits)
    laid = resolve(policy.limits, rm.security_ids, tree_attributes(rm, attrs))  # type: ignore[arg-type]
    opt = get_optimizer(policy, rm.n_assets, rm.factor_names, structural_exposures(rm), laid)
    problem = opt.problem
    w0 = pd.Series(first.weights, index=list(rm.security_ids))
    t0 = time.perf_counter()
    again = optimize(policy, replace(inputs, current_weights=w0))
    elapsed = time.perf_counter() - t0
    assert again.status in ("optimal", "relaxed")
    assert opt.problem is problem
    assert elapsed < 2.0
    assert LIMIT_TOL > 1e-5  # pre-trade's tolerance is looser than the optimizer's audit


def test_a_book_beyond_a_limit_it_cannot_leave_today_is_held_never_worse() -> None:
    """A sector starts at +24 % of NAV (limit ±10 %) and the participation cap lets each
    name trade 0.1 % of NAV today: the strict problem is infeasible, so the sector is held at
    its own level at most (relaxation group ``limits``), and every other node is kept."""
    rm = synthetic_risk_model(60, seed=4)
    ids = list(rm.security_ids)
    sector = tree_attributes(rm)["sector"]
    big = str(sector.value_counts().index[0])
    s00 = [s for s in ids if sector[s] == big][:6]
    assert len(s00) == 6
    w0 = pd.Series(0.0, index=ids)
    w0[s00] = 0.04
    base = synthetic_inputs(rm, 4, portfolio_value=NAV, current_weights=w0.to_numpy())
    adv = base.adv.copy()
    adv[s00] = 0.001 * NAV / 0.1  # participation 10 % of ADV = 0.1 % of NAV a day
    inputs = replace(base, adv=adv, prices=pd.Series(50.0, index=ids))
    limits = load_limits("default")
    policy = reconcile(load_policy("default"), limits)
    result = optimize(policy, inputs)
    assert result.status == "relaxed", result.message
    held = [r for r in result.relaxations if r.group == "limits"]
    assert [r.constraint for r in held] == [f"portfolio/{big}:net:hi"]
    assert held[0].limit == 0.10 and held[0].amount == pytest.approx(0.14, abs=1e-6)
    w = pd.Series(result.weights, index=ids)
    assert w[s00].sum() <= 0.24 + 1e-5  # never worse than it started
    laid = resolve(policy.limits, ids, tree_attributes(rm))  # type: ignore[arg-type]
    others = laid.report(result.weights)
    others = others[others["node"] != f"portfolio/{big}"]
    assert others["excess"].max() <= 1e-5


def test_a_flat_file_still_requires_its_exposure_keys_a_tree_file_does_not() -> None:
    flat = load_limits("default").model_dump()
    del flat["max_gross_exposure"], flat["hierarchy"]
    with pytest.raises(ValueError, match="max_gross_exposure required"):
        RiskLimits.model_validate(flat)
    tree_only = {
        k: v
        for k, v in flat.items()
        if k not in ("net_exposure", "max_sector_exposure", "sector_overrides")
    }
    limits = RiskLimits.model_validate({**tree_only, "hierarchy": TREE})
    assert limits.tree().nodes["US/reit"].gross == 0.1
    with pytest.raises(ValueError, match="declare hierarchy nodes by path"):
        RiskLimits.model_validate(
            {
                **flat,
                "max_gross_exposure": 2.0,
                "hierarchy": TREE,
                "sector_overrides": {"Energy": 0.05},
            }
        )


def test_optimizer_and_pretrade_place_every_security_in_the_same_nodes() -> None:
    """``resolve`` (the optimizer's membership) and ``LimitTree.chain`` (pre-trade's, per
    security) agree, including a missing attribute column and missing values."""
    tree = LimitTree.model_validate(
        {
            "levels": ["region", "asset_class", "sector"],
            "portfolio": {"gross": 2.0},
            "each": {"region": {"net": {"lo": -1, "hi": 1}}, "sector": {"gross": 0.5}},
            "nodes": {"US/all": {"long": 0.7}, "XX/all/Nowhere": {"gross": 0.1}},
        }
    )
    rng = np.random.default_rng(0)
    ids = [f"S{i}" for i in range(200)]
    attrs = pd.DataFrame(
        {
            "region": rng.choice(np.array(["US", "EU", None], dtype=object), 200),
            "sector": rng.choice(np.array(["Tech", "Energy", None], dtype=object), 200),
        },
        index=ids,
    )  # no asset_class column: one node, "all"
    laid = resolve(tree, ids, attrs)
    member_of: dict[str, set[str]] = {s: set() for s in ids}
    for node in laid.nodes:
        for i in node.members:
            member_of[ids[i]].add(node.name)
    for s in ids:
        row = {k: v for k, v in attrs.loc[s].items()}
        assert member_of[s] == {name for name, _, _ in tree.chain(row)}, s
    assert "portfolio/US/all" in {n.name for n in laid.nodes}
    # A declared node nobody belongs to still resolves (empty), so a typo shows.
    empty = [n for n in laid.nodes if n.name == "portfolio/XX/all/Nowhere"]
    assert len(empty) == 1 and len(empty[0].members) == 0
