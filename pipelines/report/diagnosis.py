"""Which constraints conflict on an infeasible day: re-solve with one group loosened.

The optimizer reports only that the hard constraints cannot all hold (every soft group is
already widened as far as the policy allows when it gives up). To name the conflict, the
day's problem is rebuilt from its recorded inputs (alpha, current weights, risk model, book)
and solved again once per constraint group, that group loosened and everything else as
declared. A group whose loosening makes the problem feasible is in the conflict; when none
does, several groups conflict together, and the report says so rather than guess.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pipelines.lake.stage_state import StageState
from pipelines.portfolio.limits_tree import Band
from pipelines.portfolio.policy import Policy


def _reach(policy: Policy, names: int) -> float:
    """A gross (and so a net) no portfolio of ``names`` names can exceed under the per-name
    bound ``|w_i| <= max_position``: a cap there is, in effect, no cap. A fixed 1e6 was that
    too, but left the solver a constraint a million times the book's scale, and on some CPUs
    the re-solve without a gross cap ended in a solver error instead of "optimal"."""
    return max(names * policy.max_position, policy.gross_leverage, 1.0)


#: (group, what "loosened" means, whether the policy constrains it, the loosened policy of
#: a day with the given number of names).
_GROUPS: tuple[
    tuple[str, str, Callable[[Policy], bool], Callable[[Policy, int], dict[str, Any]]], ...
] = (
    (
        "gross leverage",
        "no cap",
        lambda p: True,
        lambda p, n: {"gross_leverage": _reach(p, n)},
    ),
    ("max position", "100% of NAV", lambda p: True, lambda p, n: {"max_position": 1.0}),
    (
        "position % of ADV",
        "no cap",
        lambda p: p.max_position_adv is not None,
        lambda p, n: {"max_position_adv": None},
    ),
    (
        "participation",
        "no cap",
        lambda p: p.participation is not None,
        lambda p, n: {"participation": None},
    ),
    (
        "per-order caps",
        "no cap",
        lambda p: p.max_trade_notional is not None or p.max_trade_shares is not None,
        lambda p, n: {"max_trade_notional": None, "max_trade_shares": None},
    ),
    (
        "hierarchical limits",
        "removed",
        lambda p: p.limits is not None,
        lambda p, n: {"limits": None},
    ),
    ("no-trade list", "emptied", lambda p: bool(p.no_trade), lambda p, n: {"no_trade": []}),
    (
        "net_exposure",
        "any net",
        lambda p: True,
        lambda p, n: {"net_exposure": Band(lo=-_reach(p, n), hi=_reach(p, n))},
    ),
    (
        "turnover",
        "no cap",
        lambda p: p.turnover_cap is not None,
        lambda p, n: {"turnover_cap": None},
    ),
    (
        "sector_bounds",
        "removed",
        lambda p: p.sector_bounds is not None or bool(p.sector_overrides),
        lambda p, n: {"sector_bounds": None, "sector_overrides": {}},
    ),
    (
        "factor_bounds",
        "removed",
        lambda p: bool(p.factor_bounds),
        lambda p, n: {"factor_bounds": {}},
    ),
    ("beta", "removed", lambda p: p.beta_band is not None, lambda p, n: {"beta_band": None}),
)


@dataclass(frozen=True)
class Diagnosis:
    """``frame``: one row per group tried (group, loosened to, result); ``conflicts``: the
    groups whose loosening alone makes the day feasible; ``note``: how it was found, or why
    it could not be."""

    frame: pd.DataFrame
    conflicts: list[str]
    note: str


def loosened_policies(policy: Policy, names: int) -> list[tuple[str, str, Policy]]:
    """The policy once per constraint group it constrains, that group loosened, for a day
    of ``names`` names."""
    return [
        (group, how, policy.model_copy(update=loosen(policy, names)))
        for group, how, applies, loosen in _GROUPS
        if applies(policy)
    ]


def diagnose_infeasible(art: StageState, policy_name: str, limits_name: str) -> Diagnosis:
    """Re-solve the day recorded in ``art`` (its ``targets``, ``risk_model`` and ``book``)
    once per constraint group of the policy (``policy_name`` reconciled with
    ``limits_name``, as the optimize stage does), that group loosened."""
    from pipelines.portfolio.optimizer import OptimizationInputs, optimize
    from pipelines.portfolio.rebalance import prune_factor_bounds
    from pipelines.risk.consistency import load_policy_with_limits

    empty = pd.DataFrame(columns=["group", "loosened to", "result"])
    targets, model, book = art.find("targets"), art.find("risk_model"), art.find("book")
    if targets is None or model is None or book is None:
        return Diagnosis(empty, [], "No diagnosis: the day's inputs are not all recorded.")
    opt = targets.optimization
    ids = list(opt.security_ids)
    prices = pd.Series(book.prices, dtype=float).reindex(ids)
    inputs = OptimizationInputs(
        date=opt.date,
        alpha=pd.Series(opt.alpha, index=ids),
        risk_model=model.subset(ids),
        current_weights=pd.Series(opt.current_weights, index=ids),
        portfolio_value=float(targets.portfolio_value),
        adv=(pd.Series(book.adv_shares, dtype=float).reindex(ids) * prices).fillna(0.0),
        prices=prices,
    )
    try:
        policy = prune_factor_bounds(load_policy_with_limits(policy_name, limits_name)[0], model)
        base = optimize(policy, inputs).status
    except Exception as exc:  # the report still renders; the note says what failed
        return Diagnosis(empty, [], f"No diagnosis: the day could not be re-solved ({exc}).")
    if base != "infeasible":
        return Diagnosis(
            empty,
            [],
            f"No diagnosis: re-solved from the recorded inputs under policy {policy_name} the "
            f"day is {base} (the policy or limits files changed since).",
        )
    rows = []
    for group, how, loosened in loosened_policies(policy, len(ids)):
        try:
            status = optimize(loosened, inputs).status
        except Exception as exc:  # one failed re-solve says nothing about the others
            status = f"error: {exc}"
        rows.append({"group": group, "loosened to": how, "result": status})
    frame = pd.DataFrame(rows, columns=["group", "loosened to", "result"])
    conflicts = [str(g) for g in frame.loc[frame["result"].isin(["optimal", "relaxed"]), "group"]]
    soft = ", ".join(policy.relaxation_order) or "none"
    note = (
        f"Each row re-solves the day under policy {policy_name} (limits {limits_name}) with "
        f"that one group loosened and every other constraint as declared; the soft groups "
        f"({soft}) are widened by the optimizer as on the day."
    )
    return Diagnosis(frame, conflicts, note)
