"""From optimal weights to whole-share targets, with ex-ante risk, for ``target_portfolios``.

Share rounding (per security, V = portfolio value, p = price, ℓ = lot size)::

    raw_shares    = w · V / p
    target_shares = ℓ · round(raw_shares / ℓ)
    trade_shares  = target_shares − current_shares
    if 0 < |trade_shares| · p < min_trade_notional and target_shares ≠ 0:
        trade_shares = 0; target_shares = current_shares      (drop tiny trades)

Closing trades (target 0) are never dropped, so exits and restricted names are fully
liquidated instead of leaving dust. ``rounded_weight = target_shares · p / V``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.portfolio.results import OptimizationResult
from pipelines.portfolio.risk_model import RiskDecomposition, RiskModel

TARGET_COLUMNS = (
    "date",
    "portfolio_id",
    "security_id",
    "weight",
    "rounded_weight",
    "current_weight",
    "target_shares",
    "current_shares",
    "trade_shares",
    "trade_notional",
    "price",
    "alpha",
    "risk_contribution",
    "status",
    "solver",
)


@dataclass(frozen=True)
class TargetPortfolio:
    """Whole-share targets for one portfolio and date, with the optimization record.

    ``positions`` columns: security_id, weight, rounded_weight, current_weight,
    target_shares, current_shares, trade_shares, trade_notional, price, alpha,
    risk_contribution (Euler contribution to ex-ante daily variance of the rounded
    portfolio). ``risk`` is the ex-ante decomposition of the rounded portfolio.
    """

    date: pd.Timestamp
    portfolio_id: str
    portfolio_value: float
    optimization: OptimizationResult
    positions: pd.DataFrame
    risk: RiskDecomposition | None

    def to_frame(self) -> pd.DataFrame:
        """Rows for ``target_portfolios`` (columns: ``TARGET_COLUMNS``)."""
        df = self.positions.copy()
        df.insert(0, "portfolio_id", self.portfolio_id)
        df.insert(0, "date", self.date)
        df["status"] = self.optimization.status
        df["solver"] = self.optimization.solver
        return df[list(TARGET_COLUMNS)].reset_index(drop=True)

    def summary(self) -> dict[str, object]:
        """Scalar summary: status, solver, times, objective terms, risk, relaxations."""
        opt = self.optimization
        out: dict[str, object] = {
            "date": self.date,
            "portfolio_id": self.portfolio_id,
            "status": opt.status,
            "solver": opt.solver,
            "solve_time": opt.solve_time,
            "n_solves": len(opt.solves),
            "message": opt.message,
            "relaxations": [
                {"group": r.group, "constraint": r.constraint, "limit": r.limit, "amount": r.amount}
                for r in opt.relaxations
            ],
        }
        if opt.terms is not None:
            t = opt.terms
            out.update(
                objective=t.objective,
                alpha_term=t.alpha,
                risk_term=t.risk,
                cost_term=t.transaction_cost,
                holding_term=t.holding_cost,
                penalty_term=t.penalty,
            )
        if self.risk is not None:
            out.update(
                total_vol=self.risk.total_vol,
                factor_var=self.risk.factor_var,
                specific_var=self.risk.specific_var,
            )
        return out


def round_to_shares(
    weights: np.ndarray,
    prices: np.ndarray,
    current_shares: np.ndarray,
    portfolio_value: float,
    lot_size: float | np.ndarray = 1,
    min_trade_notional: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Whole-lot target shares and trades (see module docstring). Returns (target, trade)."""
    p = np.asarray(prices, dtype=float)
    bad = ~(np.isfinite(p) & (p > 0))
    if bad.any():
        raise ValueError(f"non-positive or missing prices at positions {np.flatnonzero(bad)[:20]}")
    lot = np.broadcast_to(np.asarray(lot_size, dtype=float), p.shape)
    cur = np.asarray(current_shares, dtype=float)
    raw = np.asarray(weights, dtype=float) * portfolio_value / p
    target = lot * np.round(raw / lot)
    trade = target - cur
    small = (np.abs(trade) * p < min_trade_notional) & (target != 0) & (trade != 0)
    target = np.where(small, cur, target)
    trade = np.where(small, 0.0, trade)
    return target, trade


def build_targets(
    result: OptimizationResult,
    portfolio_id: str,
    prices: pd.Series,
    current_shares: pd.Series,
    portfolio_value: float,
    risk_model: RiskModel | None = None,
    lot_size: int | pd.Series = 1,
    min_trade_notional: float = 0.0,
) -> TargetPortfolio:
    """Turn an optimization result into whole-share targets with ex-ante risk.

    ``prices`` / ``current_shares`` are indexed by security id (missing shares ⇒ 0).
    If the optimization failed (no weights) the targets hold current positions (no trades)
    and carry the failure status, so downstream never trades on a wrong portfolio.
    """
    ids = list(result.security_ids)
    price = prices.reindex(ids).to_numpy(dtype=float, na_value=np.nan)
    missing = [ids[i] for i in np.flatnonzero(~np.isfinite(price))]
    if missing:
        raise ValueError(f"missing prices for {len(missing)} securities: {missing[:25]}")
    cur = current_shares.reindex(ids).fillna(0.0).to_numpy(dtype=float)
    lots: float | np.ndarray = (
        lot_size.reindex(ids).fillna(1).to_numpy(dtype=float)
        if isinstance(lot_size, pd.Series)
        else float(lot_size)
    )
    if result.weights is None:
        target, trade = cur.copy(), np.zeros_like(cur)
        weights = np.full(len(ids), np.nan)
    else:
        weights = result.weights
        target, trade = round_to_shares(
            weights, price, cur, portfolio_value, lots, min_trade_notional
        )
    rounded = target * price / portfolio_value
    risk = None
    contrib = np.full(len(ids), np.nan)
    if risk_model is not None:
        rm = risk_model.subset(ids)
        risk = rm.decompose(rounded)
        contrib = risk.asset_contrib.to_numpy()
    positions = pd.DataFrame(
        {
            "security_id": ids,
            "weight": weights,
            "rounded_weight": rounded,
            "current_weight": cur * price / portfolio_value,
            "target_shares": target,
            "current_shares": cur,
            "trade_shares": trade,
            "trade_notional": trade * price,
            "price": price,
            "alpha": result.alpha,
            "risk_contribution": contrib,
        }
    )
    return TargetPortfolio(
        date=result.date,
        portfolio_id=portfolio_id,
        portfolio_value=float(portfolio_value),
        optimization=result,
        positions=positions,
        risk=risk,
    )
