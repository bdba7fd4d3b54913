"""The portfolio stage's lake tables: its risk model and its target portfolios.

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

from pipelines.lake.spec import TableSpec, column

RISK_EXPOSURES = TableSpec(
    name="risk_exposures",
    description="Factor exposures B of the risk model (long form), as of the session close.",
    key=("model_id", "security_id", "factor"),
    fields=(
        column("model_id", pa.string(), False, "risk model configuration id"),
        column("security_id", pa.string(), False),
        column("factor", pa.string(), False, "market | sector_<name> | style name"),
        column("exposure", pa.float64(), False, "1 / 0 for market and sectors, σ units for styles"),
    ),
    partitioned=True,
    zorder=("valid_date",),
    valid_time_meaning="session whose close the exposures describe",
)

RISK_FACTOR_RETURNS = TableSpec(
    name="risk_factor_returns",
    description="Daily factor returns from the cross-sectional WLS regression.",
    key=("model_id", "factor"),
    fields=(
        column("model_id", pa.string(), False),
        column("factor", pa.string(), False),
        column("factor_return", pa.float64(), False, "daily return (fraction)"),
    ),
    valid_time_meaning="session of the return",
)

RISK_FACTOR_COVARIANCE = TableSpec(
    name="risk_factor_covariance",
    description="Factor covariance F (EWMA, optional Newey-West), long form, daily return².",
    key=("model_id", "factor_i", "factor_j"),
    fields=(
        column("model_id", pa.string(), False),
        column("factor_i", pa.string(), False),
        column("factor_j", pa.string(), False),
        column("cov", pa.float64(), False),
    ),
    valid_time_meaning="session whose close the forecast is made at",
)

RISK_SPECIFIC = TableSpec(
    name="risk_specific",
    description="Specific (idiosyncratic) risk D per security, EWMA with Bayesian shrinkage.",
    key=("model_id", "security_id"),
    fields=(
        column("model_id", pa.string(), False),
        column("security_id", pa.string(), False),
        column("specific_var", pa.float64(), False, "daily return²"),
        column("specific_vol", pa.float64(), False, "daily return"),
    ),
    partitioned=True,
    zorder=("valid_date",),
    valid_time_meaning="session whose close the forecast is made at",
)

TARGET_PORTFOLIOS = TableSpec(
    name="target_portfolios",
    description="Optimized target per portfolio and security: weight, whole-share target, trade, ex-ante risk.",
    key=("portfolio_id", "security_id"),
    fields=(
        column("portfolio_id", pa.string(), False),
        column("security_id", pa.string(), False),
        column("weight", pa.float64(), doc="optimal weight (fraction of NAV); null if no solution"),
        column("rounded_weight", pa.float64(), doc="weight of the whole-lot target"),
        column("current_weight", pa.float64()),
        column("target_shares", pa.float64(), False),
        column("current_shares", pa.float64(), False),
        column("trade_shares", pa.float64(), False),
        column("trade_notional", pa.float64(), False, "currency"),
        column("price", pa.float64(), False, "decision price"),
        column("lot_size", pa.float64(), False),
        column("min_trade_notional", pa.float64(), False),
        column("alpha", pa.float64(), doc="expected next-session return (fraction)"),
        column(
            "risk_contribution",
            pa.float64(),
            doc="Euler contribution to ex-ante daily variance",
        ),
        column("status", pa.string(), False, "optimal | relaxed | infeasible | error"),
        column("solver", pa.string()),
        column("policy", pa.string(), False),
        column("portfolio_value", pa.float64(), False),
    ),
    partitioned=True,
    zorder=("valid_date",),
    valid_time_meaning="decision session (targets trade from the next session)",
)

TARGET_RISK = TableSpec(
    name="target_risk",
    description="Ex-ante risk decomposition of the rounded target: total, factor, specific, per factor.",
    key=("portfolio_id", "component"),
    fields=(
        column("portfolio_id", pa.string(), False),
        column("component", pa.string(), False, "total | factor | specific | factor:<name>"),
        column("variance", pa.float64(), False, "daily return² (Euler contribution for factors)"),
        column("volatility", pa.float64(), doc="sqrt(variance) for total/factor/specific"),
        column("exposure", pa.float64(), doc="portfolio exposure y_k = B'w for factor rows"),
    ),
    valid_time_meaning="decision session",
)

SOLVE_LOG = TableSpec(
    name="solve_log",
    description="Every optimizer decision (seq 0) and solver call (seq 1…): status, objective terms, time, relaxations.",
    key=("portfolio_id", "seq"),
    fields=(
        column("portfolio_id", pa.string(), False),
        column("seq", pa.int32(), False, "0 = the decision, 1… = solver calls in order"),
        column("stage", pa.string(), False, "result | base | base+relax:<groups> | cardinality"),
        column("solver", pa.string()),
        column("status", pa.string(), False),
        column("solve_time", pa.float64(), doc="wall seconds (seq 0: all calls)"),
        column("solver_time", pa.float64(), doc="wall seconds inside the solver call"),
        column("objective", pa.float64()),
        column("alpha_term", pa.float64()),
        column("risk_term", pa.float64()),
        column("cost_term", pa.float64()),
        column("holding_term", pa.float64()),
        column("penalty_term", pa.float64()),
        column("relaxed_groups", pa.string(), doc="comma-separated soft groups opened"),
        column("relaxations", pa.string(), doc="JSON list: group, constraint, limit, amount"),
        column("policy", pa.string(), False),
        column("message", pa.string()),
    ),
    valid_time_meaning="decision session",
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
