"""Portfolio construction policy: constraints, aversions and relaxation order, from YAML.

Units: weights are fractions of portfolio value (NAV); ``alpha`` is the expected return
over the next trading day; exposures to style factors are in cross-sectional σ units
times weight; ADV is in currency per day.

Hard vs soft
------------
A constraint group named in ``relaxation_order`` is *soft*: when the problem is
infeasible it may be widened, group after group in that order, through a penalized slack.
Everything else is *hard* and never relaxed: position bounds (absolute, % ADV,
participation, per-order caps), long-only, restricted list, gross leverage, the
hierarchical ``limits`` (:mod:`pipelines.portfolio.limits_tree`) — and any soft-capable
group that is not listed. If the hard constraints alone are infeasible the optimizer returns
status ``infeasible`` and no weights.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipelines.portfolio.limits_tree import Band, LimitTree

POLICY_DIR = Path(__file__).with_name("policies")

SoftGroup = Literal[
    "turnover", "factor_bounds", "sector_bounds", "beta", "net_exposure", "max_names"
]
SOFT_GROUPS: tuple[str, ...] = (
    "turnover",
    "factor_bounds",
    "sector_bounds",
    "beta",
    "net_exposure",
    "max_names",
)


class Policy(BaseModel):
    """A portfolio construction policy (see module docstring for units)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    mode: Literal["long_short", "long_only"] = "long_short"
    # Σ|w_i| ≤ gross_leverage (hard).
    gross_leverage: float = Field(2.0, gt=0)
    # Σ w_i ∈ net_exposure.
    net_exposure: Band = Band(lo=0.0, hi=0.0)
    # |w_i| ≤ max_position (hard).
    max_position: float = Field(0.02, gt=0)
    # |w_i|·V ≤ max_position_adv · ADV_i (hard; None disables).
    max_position_adv: float | None = 0.5
    # |w_i − w0_i|·V ≤ participation · ADV_i (hard; None disables).
    participation: float | None = 0.1
    # Net exposure to each ``sector_*`` factor; per-sector overrides by sector name.
    sector_bounds: Band | None = Band(lo=-0.02, hi=0.02)
    sector_overrides: dict[str, Band] = Field(default_factory=dict)
    # Exposure bounds on named (style / market) factors.
    factor_bounds: dict[str, Band] = Field(default_factory=dict)
    # βᵀw ∈ beta_band (None disables); β from the risk model (predicted beta to market).
    beta_band: Band | None = Band(lo=-0.05, hi=0.05)
    # Σ|w_i − w0_i| ≤ turnover_cap (None disables).
    turnover_cap: float | None = 0.3
    # Maximum number of names with |w_i| > name_threshold (None disables); heuristic.
    max_names: int | None = None
    name_threshold: float = 1e-5
    # |w_i − w0_i|·V ≤ max_trade_notional (currency; hard; None disables) and
    # |w_i − w0_i|·V ≤ max_trade_shares · price_i (hard; needs prices; None disables):
    # the pre-trade per-order caps, set by :func:`pipelines.risk.consistency.reconcile`.
    max_trade_notional: float | None = Field(default=None, gt=0)
    max_trade_shares: float | None = Field(default=None, gt=0)
    # Hierarchical exposure limits (hard, never relaxed), normally the pre-trade limits
    # file's tree added by :func:`pipelines.risk.consistency.reconcile`.
    limits: LimitTree | None = None
    # Names no order may be sent for (pre-trade's restricted list): w_i = w0_i (hard).
    no_trade: list[str] = Field(default_factory=list)
    # "exclude": w_i = 0 (forced exit); "no_new_positions": w_i between 0 and w0_i.
    restricted_mode: Literal["exclude", "no_new_positions"] = "exclude"

    # Objective weights: alpha·w − risk_aversion·risk − cost_aversion·tcost − holding.
    risk_aversion: float = Field(10.0, ge=0)
    cost_aversion: float = Field(1.0, ge=0)
    holding_aversion: float = Field(1.0, ge=0)
    # Almgren impact constant c in b_i = c·σ_i·sqrt(V/ADV_i).
    impact_coefficient: float = Field(1.0, ge=0)
    commission: float = Field(0.0002, ge=0)  # fraction of traded notional
    # Annualized borrow fee used when a security has none (fraction/yr).
    default_borrow_fee: float = Field(0.0025, ge=0)
    periods_per_year: int = 252

    relaxation_order: list[SoftGroup] = Field(default_factory=list)
    # Penalty per unit of constraint violation (return units; ≫ typical alpha).
    relaxation_penalty: float = Field(10.0, gt=0)

    solvers: list[str] = Field(default_factory=lambda: ["CLARABEL", "SCS"])
    solver_options: dict[str, dict[str, float | int | bool | str]] = Field(default_factory=dict)
    # True: one 3D power cone per name for |z|^{3/2}; False: cvxpy's exact SOC form
    # (measured ~2x fewer Clarabel iterations and more robust at N=3,000).
    impact_power_cone: bool = False
    # True: the chain's CLARABEL entry solves the leaner cone program written directly for
    # Clarabel (pipelines.portfolio.direct: ~23 instead of ~30 iterations, ~10% smaller
    # KKT system at N=3,000); False: every solve goes through the compiled cvxpy problem.
    direct_solve: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        if len(set(self.relaxation_order)) != len(self.relaxation_order):
            raise ValueError("relaxation_order has duplicates")
        if self.mode == "long_only" and self.net_exposure.lo < 0:
            raise ValueError("long_only policy with negative net exposure")
        if not self.solvers:
            raise ValueError("at least one solver required")
        return self

    def is_soft(self, group: str) -> bool:
        return group in self.relaxation_order


def load_policy(name_or_path: str | Path) -> Policy:
    """Load a policy by shipped name (``default``, ``long_only``) or YAML path."""
    p = Path(name_or_path)
    if not p.suffix:
        p = POLICY_DIR / f"{name_or_path}.yaml"
    # Validated afresh each call (cheap; every caller gets its own object); only the
    # YAML parse, ~4 ms a session in a backtest, is shared between calls with the same text.
    return Policy.model_validate(_parse(p.read_bytes()))


@lru_cache(maxsize=32)
def _parse(text: bytes) -> Any:
    """The YAML document ``text`` (cached by content: an edited file is parsed again)."""
    return yaml.safe_load(text)
