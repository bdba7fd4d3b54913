"""The rebalance: one frozen inputs object in, whole-share targets out.

:func:`rebalance` is the only place targets are optimized: the daily loop's ``optimize``
stage builds :class:`RebalanceInputs` from the broker's book and the day's state, and
:func:`pipelines.portfolio.stage.inputs_from_lake` builds them from the lake alone. Both
go through the same steps:

1. factor bounds on styles the risk model does not carry (no data yet) are dropped from
   the policy — they cannot be enforced (:func:`prune_factor_bounds`);
2. current shares, prices, ADV (shares → currency) and volatility are aligned on the risk
   model's universe; holdings outside it raise or are left to the order generator to
   liquidate (``outside_holdings``);
3. the optimizer (:func:`pipelines.portfolio.optimizer.optimize`) and whole-share targets
   (:func:`pipelines.portfolio.targets.build_targets`).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from pipelines.portfolio.policy import Policy
from pipelines.portfolio.risk_model import RiskModel
from pipelines.portfolio.targets import TargetPortfolio

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Book:
    """The portfolio as the optimizer saw it: positions (shares), cash, marks, NAV;
    ``stale`` the held securities marked at an earlier close (none on the session)."""

    positions: dict[str, float]
    cash: float
    prices: dict[str, float]
    nav: float
    adv_shares: dict[str, float]
    sectors: dict[str, str]
    stale: tuple[str, ...] = ()


@dataclass(frozen=True)
class RebalanceInputs:
    """Everything one rebalance needs (series indexed by security id).

    ``alpha`` is the expected next-session return; ``missing_alpha="raise"`` makes a
    universe member without one an error (:class:`~pipelines.portfolio.optimizer.MissingAlphaError`),
    ``"zero"`` gives it no view. ``adv_shares`` is shares per day; ``volatility`` daily.
    ``outside_holdings``: a holding outside the risk model's universe raises, or (``"liquidate"``)
    is left out of the optimization — the order generator liquidates names absent from the
    targets.
    """

    day: dt.date
    portfolio_id: str
    policy: Policy
    risk_model: RiskModel
    alpha: pd.Series
    prices: pd.Series
    current_shares: pd.Series
    nav: float
    adv_shares: pd.Series
    volatility: pd.Series
    restricted: frozenset[str] = frozenset()
    lot_size: int | pd.Series = 1
    min_trade_notional: float = 0.0
    missing_alpha: Literal["raise", "zero"] = "raise"
    outside_holdings: Literal["raise", "liquidate"] = "raise"


def prune_factor_bounds(policy: Policy, model: RiskModel) -> Policy:
    """``policy`` without bounds on factors ``model`` does not carry (cannot be enforced)."""
    bounds = {k: v for k, v in policy.factor_bounds.items() if k in model.factor_names}
    if bounds == policy.factor_bounds:
        return policy
    return policy.model_copy(update={"factor_bounds": bounds})


def rebalance(inputs: RebalanceInputs) -> TargetPortfolio:
    """Optimize and round ``inputs``' targets (module docstring). An infeasible or failed
    optimization still returns targets that hold the current positions, with the status."""
    from pipelines.portfolio.optimizer import InputDataError, OptimizationInputs, optimize
    from pipelines.portfolio.targets import build_targets

    if inputs.missing_alpha not in ("raise", "zero"):
        raise InputDataError(f"missing_alpha must be 'raise' or 'zero': {inputs.missing_alpha!r}")
    model = inputs.risk_model
    ids = list(model.security_ids)
    members = set(ids)
    shares = inputs.current_shares.astype(float)
    outside = sorted(str(s) for s, q in shares.items() if q and str(s) not in members)
    if outside:
        if inputs.outside_holdings == "raise":
            raise InputDataError(
                f"{inputs.day}: holdings outside the risk model universe: {outside[:25]}"
            )
        log.warning("%s: held outside the risk model: %s", inputs.day, outside[:20])
    policy = prune_factor_bounds(inputs.policy, model)
    # One index for every alignment below (building one from the ids is most of a reindex).
    index = pd.Index(ids)
    px = inputs.prices.reindex(index).astype(float)
    held = shares.reindex(index).fillna(0.0)
    nav = float(inputs.nav)
    alpha = inputs.alpha
    if inputs.missing_alpha == "zero":
        alpha = alpha.reindex(index).fillna(0.0)
    result = optimize(
        policy,
        OptimizationInputs(
            date=pd.Timestamp(inputs.day),
            alpha=alpha,
            risk_model=model,
            current_weights=held * px.fillna(0.0) / nav,
            portfolio_value=nav,
            adv=(inputs.adv_shares.reindex(index).astype(float) * px).fillna(0.0),
            volatility=inputs.volatility.reindex(index).astype(float).fillna(0.02),
            restricted=frozenset(inputs.restricted),
            prices=px,
        ),
    )
    return build_targets(
        result,
        inputs.portfolio_id,
        px,
        held,
        nav,
        risk_model=model,
        lot_size=inputs.lot_size,
        min_trade_notional=inputs.min_trade_notional,
        policy=policy,
    )
