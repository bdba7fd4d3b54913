"""The portfolio stage's lake tables, declared once (listed in ``STAGE_TABLE_MODULES``).

All are bitemporal POINT tables. ``valid_date`` is the decision session (the close whose
data the risk model / the targets use); ``known_at`` is the decision's knowledge time (the
daily cutoff of that session). Writes use deterministic batch ids per (table, model or
portfolio, session, knowledge time), so re-running a day adds nothing: the first decision
recorded for a knowledge time is the one that stands.

Risk model (``model_id`` names the estimation configuration, e.g. ``default``):

* ``risk_exposures``        — B, long form (security, factor) -> exposure;
* ``risk_factor_returns``   — daily factor returns; ``valid_date`` = the return's session;
* ``risk_factor_covariance``— F, long form (factor_i, factor_j) -> cov (daily return²);
* ``risk_specific``         — D: specific variance and volatility per security.

Portfolio:

* ``target_portfolios``     — per security: weight, whole-share target, trade, lot, risk;
* ``target_risk``           — ex-ante risk decomposition: total / factor / specific and
  one row per factor (exposure, variance contribution);
* ``solve_log``             — seq 0: the decision (status, objective terms, relaxations,
  total solve time); seq 1…: one row per solver call.
"""

from __future__ import annotations

import pyarrow as pa

from pipelines.lake import TableSpec, register


def _f(name: str, type_: pa.DataType, nullable: bool = True, doc: str = "") -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"doc": doc} if doc else None)


RISK_EXPOSURES = register(
    TableSpec(
        name="risk_exposures",
        description="Factor exposures B of the risk model (long form), as of the session close.",
        key=("model_id", "security_id", "factor"),
        fields=(
            _f("model_id", pa.string(), False, "risk model configuration id"),
            _f("security_id", pa.string(), False),
            _f("factor", pa.string(), False, "market | sector_<name> | style name"),
            _f("exposure", pa.float64(), False, "1 / 0 for market and sectors, σ units for styles"),
        ),
        partitioned=True,
        zorder=("valid_date",),
        valid_time_meaning="session whose close the exposures describe",
    )
)

RISK_FACTOR_RETURNS = register(
    TableSpec(
        name="risk_factor_returns",
        description="Daily factor returns from the cross-sectional WLS regression.",
        key=("model_id", "factor"),
        fields=(
            _f("model_id", pa.string(), False),
            _f("factor", pa.string(), False),
            _f("factor_return", pa.float64(), False, "daily return (fraction)"),
        ),
        valid_time_meaning="session of the return",
    )
)

RISK_FACTOR_COVARIANCE = register(
    TableSpec(
        name="risk_factor_covariance",
        description="Factor covariance F (EWMA, optional Newey-West), long form, daily return².",
        key=("model_id", "factor_i", "factor_j"),
        fields=(
            _f("model_id", pa.string(), False),
            _f("factor_i", pa.string(), False),
            _f("factor_j", pa.string(), False),
            _f("cov", pa.float64(), False),
        ),
        valid_time_meaning="session whose close the forecast is made at",
    )
)

RISK_SPECIFIC = register(
    TableSpec(
        name="risk_specific",
        description="Specific (idiosyncratic) risk D per security, EWMA with Bayesian shrinkage.",
        key=("model_id", "security_id"),
        fields=(
            _f("model_id", pa.string(), False),
            _f("security_id", pa.string(), False),
            _f("specific_var", pa.float64(), False, "daily return²"),
            _f("specific_vol", pa.float64(), False, "daily return"),
        ),
        partitioned=True,
        zorder=("valid_date",),
        valid_time_meaning="session whose close the forecast is made at",
    )
)

TARGET_PORTFOLIOS = register(
    TableSpec(
        name="target_portfolios",
        description="Optimized target per portfolio and security: weight, whole-share target, trade, ex-ante risk.",
        key=("portfolio_id", "security_id"),
        fields=(
            _f("portfolio_id", pa.string(), False),
            _f("security_id", pa.string(), False),
            _f("weight", pa.float64(), doc="optimal weight (fraction of NAV); null if no solution"),
            _f("rounded_weight", pa.float64(), doc="weight of the whole-lot target"),
            _f("current_weight", pa.float64()),
            _f("target_shares", pa.float64(), False),
            _f("current_shares", pa.float64(), False),
            _f("trade_shares", pa.float64(), False),
            _f("trade_notional", pa.float64(), False, "currency"),
            _f("price", pa.float64(), False, "decision price"),
            _f("lot_size", pa.float64(), False),
            _f("min_trade_notional", pa.float64(), False),
            _f("alpha", pa.float64(), doc="expected next-session return (fraction)"),
            _f(
                "risk_contribution",
                pa.float64(),
                doc="Euler contribution to ex-ante daily variance",
            ),
            _f("status", pa.string(), False, "optimal | relaxed | infeasible | error"),
            _f("solver", pa.string()),
            _f("policy", pa.string(), False),
            _f("portfolio_value", pa.float64(), False),
        ),
        partitioned=True,
        zorder=("valid_date",),
        valid_time_meaning="decision session (targets trade from the next session)",
    )
)

TARGET_RISK = register(
    TableSpec(
        name="target_risk",
        description="Ex-ante risk decomposition of the rounded target: total, factor, specific, per factor.",
        key=("portfolio_id", "component"),
        fields=(
            _f("portfolio_id", pa.string(), False),
            _f("component", pa.string(), False, "total | factor | specific | factor:<name>"),
            _f("variance", pa.float64(), False, "daily return² (Euler contribution for factors)"),
            _f("volatility", pa.float64(), doc="sqrt(variance) for total/factor/specific"),
            _f("exposure", pa.float64(), doc="portfolio exposure y_k = B'w for factor rows"),
        ),
        valid_time_meaning="decision session",
    )
)

SOLVE_LOG = register(
    TableSpec(
        name="solve_log",
        description="Every optimizer decision (seq 0) and solver call (seq 1…): status, objective terms, time, relaxations.",
        key=("portfolio_id", "seq"),
        fields=(
            _f("portfolio_id", pa.string(), False),
            _f("seq", pa.int32(), False, "0 = the decision, 1… = solver calls in order"),
            _f("stage", pa.string(), False, "result | base | base+relax:<groups> | cardinality"),
            _f("solver", pa.string()),
            _f("status", pa.string(), False),
            _f("solve_time", pa.float64(), doc="wall seconds (seq 0: all calls)"),
            _f("solver_time", pa.float64(), doc="wall seconds inside the solver call"),
            _f("objective", pa.float64()),
            _f("alpha_term", pa.float64()),
            _f("risk_term", pa.float64()),
            _f("cost_term", pa.float64()),
            _f("holding_term", pa.float64()),
            _f("penalty_term", pa.float64()),
            _f("relaxed_groups", pa.string(), doc="comma-separated soft groups opened"),
            _f("relaxations", pa.string(), doc="JSON list: group, constraint, limit, amount"),
            _f("policy", pa.string(), False),
            _f("message", pa.string()),
        ),
        valid_time_meaning="decision session",
    )
)

__all__ = [
    "RISK_EXPOSURES",
    "RISK_FACTOR_COVARIANCE",
    "RISK_FACTOR_RETURNS",
    "RISK_SPECIFIC",
    "SOLVE_LOG",
    "TARGET_PORTFOLIOS",
    "TARGET_RISK",
]
