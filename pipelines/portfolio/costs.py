"""Transaction and holding cost models (cvxportfolio conventions), in return units.

Let ``z = w − w0`` be the trade as a fraction of portfolio value ``V`` (currency).

Transaction cost (fraction of V)::

    tcost(z) = Σ_i a_i |z_i|  +  Σ_i b_i |z_i|^{3/2}

* ``a_i = half_spread_i + commission_i`` — linear term (fractions of traded notional).
* ``b_i = c · σ_i · sqrt(V / ADV_i)`` — square-root market impact (Almgren et al. 2005;
  cvxportfolio ``TcostModel``): the impact per unit traded is ``c σ_i sqrt(|z_i| V/ADV_i)``,
  so the cost is that times ``|z_i|``. ``σ_i`` is the daily return volatility, ``ADV_i``
  the average daily *dollar* volume, ``c`` ≈ 1.

Holding cost (fraction of V per day)::

    hcost(w) = Σ_i h_i · max(−w_i, 0),   h_i = borrow_fee_i / periods_per_year

with ``borrow_fee_i`` the annualized stock-borrow fee on short positions.
"""

from __future__ import annotations

import numpy as np

FloatArray = np.ndarray

# ADV floor (currency) so that b stays finite; such names are also trade-bounded to ~0.
_ADV_FLOOR = 1.0


def linear_cost_coef(half_spread: FloatArray, commission: float | FloatArray) -> FloatArray:
    """``a_i = half_spread_i + commission_i`` (fractions of notional, ≥ 0)."""
    a = np.asarray(half_spread, dtype=float) + np.asarray(commission, dtype=float)
    return np.maximum(a, 0.0)


def impact_coef(
    sigma: FloatArray, adv: FloatArray, portfolio_value: float, c: float = 1.0
) -> FloatArray:
    """``b_i = c · σ_i · sqrt(V / ADV_i)`` (σ daily, ADV and V in the same currency)."""
    adv_ = np.maximum(np.asarray(adv, dtype=float), _ADV_FLOOR)
    return c * np.asarray(sigma, dtype=float) * np.sqrt(portfolio_value / adv_)


def holding_cost_coef(borrow_fee_annual: FloatArray, periods_per_year: int = 252) -> FloatArray:
    """``h_i = fee_i / periods_per_year`` (daily cost per unit of short weight)."""
    return np.maximum(np.asarray(borrow_fee_annual, dtype=float), 0.0) / periods_per_year


def transaction_cost(z: FloatArray, a: FloatArray, b: FloatArray) -> float:
    """``Σ a_i|z_i| + Σ b_i|z_i|^{3/2}`` for a realized trade ``z`` (fraction of V)."""
    az = np.abs(np.asarray(z, dtype=float))
    return float(a @ az + b @ az**1.5)


def holding_cost(w: FloatArray, h: FloatArray) -> float:
    """``Σ h_i max(−w_i, 0)``."""
    return float(h @ np.maximum(-np.asarray(w, dtype=float), 0.0))
