"""From optimal weights to whole-share targets, with ex-ante risk, for ``target_portfolios``.

Share rounding (per security, V = portfolio value, p = price, ℓ = lot size)::

    raw_shares    = w · V / p
    target_shares = ℓ · round(raw_shares / ℓ)
    trade_shares  = target_shares − current_shares
    if 0 < |trade_shares| · p < min_trade_notional and target_shares ≠ 0:
        trade_shares = 0; target_shares = current_shares      (drop tiny trades)

Closing trades (target 0) are never dropped, so exits and restricted names are fully
liquidated instead of leaving dust. ``rounded_weight = target_shares · p / V``.

Rounding and dropped trades move the book's aggregates: at $10M NAV the dropped trades
alone pushed a ±1 % net band to −1.07 % and a long-only book to 100.04 % invested. Given
the policy, :func:`keep_aggregates` then moves single lots until the rounded net exposure
is back inside the band and gross inside the cap (each band widened to include the
optimizer's own answer, which may be a declared relaxation): first by rounding a name the
other way (no name ends more than one lot from its unrounded target, none crosses zero,
no trade falls under the minimum notional, no position opens from a target under a
quarter lot), then by restoring dropped trades (the policy outranks the minimum ticket
size). What it took is reported (``RoundingRepair``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.portfolio.errors import PortfolioInputError
from pipelines.portfolio.policy import Policy
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
class RoundingRepair:
    """What keeping the rounded book inside the policy's net band and gross cap took.

    lots_moved      — names rounded the other way (one lot each);
    trades_restored — dropped small trades put back (minimum notional waived);
    net, gross      — rounded aggregates afterwards (fractions of NAV);
    within          — both inside their (widened) limits afterwards.
    """

    lots_moved: int = 0
    trades_restored: int = 0
    net: float = float("nan")
    gross: float = float("nan")
    within: bool = True


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
    rounding: RoundingRepair = RoundingRepair()

    def to_frame(self) -> pd.DataFrame:
        """Rows for ``target_portfolios`` (columns: ``TARGET_COLUMNS``)."""
        pos = self.positions
        if isinstance(pos.index, pd.RangeIndex) and pos.index.start == 0 and pos.index.step == 1:
            # The frame below, built in one go from copies of the columns (a copy, two
            # inserts, two assignments and a column selection each built a new frame):
            # the same columns, values, dtypes and index.
            n = len(pos)

            def const(value: object) -> object:
                # What inserting the scalar infers: a str column for a string.
                if isinstance(value, str):
                    return pd.array(np.full(n, value, dtype=object), dtype="str")
                return value

            cols: dict[str, object] = {"date": self.date, "portfolio_id": const(self.portfolio_id)}
            for c in TARGET_COLUMNS[2:-2]:
                cols[c] = pos[c].array.copy()
            cols["status"] = const(self.optimization.status)
            cols["solver"] = const(self.optimization.solver)
            return pd.DataFrame(cols, index=pd.RangeIndex(n))
        df = pos.copy()
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
            "rounding_lots_moved": self.rounding.lots_moved,
            "rounding_trades_restored": self.rounding.trades_restored,
            "rounding_within_policy": self.rounding.within,
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
        raise PortfolioInputError(
            f"non-positive or missing prices at positions {np.flatnonzero(bad)[:20]}"
        )
    lot = np.broadcast_to(np.asarray(lot_size, dtype=float), p.shape)
    cur = np.asarray(current_shares, dtype=float)
    raw = np.asarray(weights, dtype=float) * portfolio_value / p
    target = lot * np.round(raw / lot)
    trade = target - cur
    small = (np.abs(trade) * p < min_trade_notional) & (target != 0) & (trade != 0)
    target = np.where(small, cur, target)
    trade = np.where(small, 0.0, trade)
    return target, trade


def keep_aggregates(
    target: np.ndarray,
    weights: np.ndarray,
    prices: np.ndarray,
    current_shares: np.ndarray,
    portfolio_value: float,
    lot_size: float | np.ndarray,
    min_trade_notional: float,
    net_band: tuple[float, float],
    max_gross: float | None,
) -> tuple[np.ndarray, RoundingRepair]:
    """Move single lots of ``target`` until Σ target·p/V ∈ ``net_band`` and
    Σ |target|·p/V ≤ ``max_gross`` (see module docstring). Returns (target, repair)."""
    p = np.asarray(prices, dtype=float)
    V = float(portfolio_value)
    lot = np.broadcast_to(np.asarray(lot_size, dtype=float), p.shape)
    cur = np.asarray(current_shares, dtype=float)
    raw = np.asarray(weights, dtype=float) * V / p
    t = np.asarray(target, dtype=float).copy()
    per_share = p / V
    lo, hi = net_band
    eps = 1e-12
    nearest = lot * np.round(raw / lot)  # round_to_shares' target before dropping trades
    dropped = (t == cur) & (nearest != cur)
    moved = restored = 0
    for _ in range(2 * len(t) + 1):
        net = float(t @ per_share)
        gross = float(np.abs(t) @ per_share)
        if net > hi + eps:
            d, gross_only = -1.0, False
        elif net < lo - eps:
            d, gross_only = 1.0, False
        elif max_gross is not None and gross > max_gross + eps:
            # Shrink whichever side keeps the net inside its band.
            d, gross_only = (-1.0 if net - 0.5 * (lo + hi) > 0 else 1.0), True
        else:
            break
        new = t + d * lot
        trade = new - cur
        ok = (
            ~dropped
            & (np.abs(new - raw) <= lot * (1 + 1e-9))  # floor or ceil of the raw target
            # Never cross zero, and open a position only from a target of ≥ ¼ lot (not
            # from solver noise around 0, e.g. a −1e-12 weight in a long-only book).
            & (
                (new == 0)
                | (np.sign(new) == np.sign(t))
                | ((t == 0) & (np.sign(new) == np.sign(raw)) & (np.abs(raw) >= 0.25 * lot))
            )
            & ((trade == 0) | (new == 0) | (np.abs(trade) * p >= min_trade_notional))
        )
        shrinks = np.abs(new) < np.abs(t)
        if gross_only:
            ok &= shrinks
        elif max_gross is not None:
            ok &= shrinks | (gross + lot * per_share <= max_gross + eps)
        if ok.any():
            # Least distortion first: the name whose rounding was closest to a tie.
            dist = np.where(ok, np.abs(new - raw) / lot + np.where(shrinks, 0.0, 1.0), np.inf)
            i = int(np.argmin(dist))
            t[i] = new[i]
            moved += 1
            continue
        helps = dropped & (np.sign(nearest - cur) == d)
        if gross_only:
            helps &= np.abs(nearest) < np.abs(t)
        if not helps.any():
            break
        gain = np.where(helps, np.abs(nearest - cur) * p, -np.inf)
        i = int(np.argmax(gain))
        t[i], dropped[i] = nearest[i], False
        restored += 1
    net = float(t @ per_share)
    gross = float(np.abs(t) @ per_share)
    within = lo - eps <= net <= hi + eps and (max_gross is None or gross <= max_gross + eps)
    return t, RoundingRepair(moved, restored, net, gross, within)


def build_targets(
    result: OptimizationResult,
    portfolio_id: str,
    prices: pd.Series,
    current_shares: pd.Series,
    portfolio_value: float,
    risk_model: RiskModel | None = None,
    lot_size: int | pd.Series = 1,
    min_trade_notional: float = 0.0,
    policy: Policy | None = None,
) -> TargetPortfolio:
    """Turn an optimization result into whole-share targets with ex-ante risk.

    ``prices`` / ``current_shares`` are indexed by security id (missing shares ⇒ 0).
    If the optimization failed (no weights) the targets hold current positions (no trades)
    and carry the failure status, so downstream never trades on a wrong portfolio.
    With ``policy``, the rounded book keeps its net band and gross cap
    (:func:`keep_aggregates`).
    """
    ids = list(result.security_ids)
    index = pd.Index(ids)
    price = prices.reindex(index).to_numpy(dtype=float, na_value=np.nan)
    missing = [ids[i] for i in np.flatnonzero(~np.isfinite(price))]
    if missing:
        raise PortfolioInputError(f"missing prices for {len(missing)} securities: {missing[:25]}")
    cur = current_shares.reindex(index).fillna(0.0).to_numpy(dtype=float)
    lots: float | np.ndarray = (
        lot_size.reindex(index).fillna(1).to_numpy(dtype=float)
        if isinstance(lot_size, pd.Series)
        else float(lot_size)
    )
    repair = RoundingRepair()
    if result.weights is None:
        target, trade = cur.copy(), np.zeros_like(cur)
        weights = np.full(len(ids), np.nan)
    else:
        weights = result.weights
        target, trade = round_to_shares(
            weights, price, cur, portfolio_value, lots, min_trade_notional
        )
        if policy is not None:
            net_w, gross_w = float(weights.sum()), float(np.abs(weights).sum())
            band = (
                min(policy.net_exposure.lo, net_w),
                max(policy.net_exposure.hi, net_w),
            )
            target, repair = keep_aggregates(
                target,
                weights,
                price,
                cur,
                portfolio_value,
                lots,
                min_trade_notional,
                band,
                max(policy.gross_leverage, gross_w),
            )
            trade = target - cur
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
        rounding=repair,
    )
