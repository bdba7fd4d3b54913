"""Synthetic, internally consistent optimization problems for tests and benchmarks.

Not market data: factor structure, costs and liquidity are drawn from simple
distributions with realistic daily magnitudes (σ_spec ≈ 1–3 %, α ≈ 5 bp).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from pipelines.portfolio.optimizer import OptimizationInputs
from pipelines.portfolio.policy import Band, Policy, load_policy
from pipelines.portfolio.risk_model import MARKET, SECTOR_PREFIX, RiskModel, is_structural_factor

STYLE_NAMES = ("size", "momentum", "value", "volatility", "liquidity")


def synthetic_risk_model(
    n_assets: int, n_factors: int = 17, n_sectors: int = 11, seed: int = 0, date: str = "2024-01-02"
) -> RiskModel:
    """Market + ``n_sectors`` one-hot sectors + (n_factors − 1 − n_sectors) styles."""
    rng = np.random.default_rng(seed)
    n_styles = n_factors - 1 - n_sectors
    if n_styles < 0:
        raise ValueError("n_factors must be ≥ 1 + n_sectors")
    styles = [STYLE_NAMES[i] if i < len(STYLE_NAMES) else f"style_{i}" for i in range(n_styles)]
    names = (MARKET, *(f"{SECTOR_PREFIX}s{j:02d}" for j in range(n_sectors)), *styles)
    B = np.zeros((n_assets, n_factors))
    B[:, 0] = 1.0
    B[np.arange(n_assets), 1 + rng.integers(0, n_sectors, n_assets)] = 1.0
    B[:, 1 + n_sectors :] = np.clip(rng.standard_normal((n_assets, n_styles)), -4, 4)
    vols = np.concatenate(
        [[0.010], np.full(n_sectors, 0.005), np.full(n_styles, 0.003)]
    ) * rng.uniform(0.7, 1.3, n_factors)
    A = rng.standard_normal((n_factors, n_factors))
    C = A @ A.T + n_factors * np.eye(n_factors)
    d = np.sqrt(np.diag(C))
    corr = C / np.outer(d, d)
    F = corr * np.outer(vols, vols)
    spec = rng.uniform(0.01, 0.03, n_assets)
    ids = tuple(f"S{i:05d}" for i in range(n_assets))
    return RiskModel(pd.Timestamp(date), ids, names, B, F, spec**2)


def synthetic_inputs(
    rm: RiskModel,
    seed: int = 0,
    portfolio_value: float = 1e8,
    current_weights: np.ndarray | None = None,
    restricted: frozenset[str] = frozenset(),
    alpha_scale: float = 0.1,
) -> OptimizationInputs:
    """Alpha, liquidity, spreads and borrow fees for ``rm``'s universe."""
    rng = np.random.default_rng(seed + 1000)
    ids = list(rm.security_ids)
    n = len(ids)
    alpha = alpha_scale * np.sqrt(rm.D) * rng.standard_normal(n)
    adv = np.exp(rng.normal(np.log(3e7), 1.0, n))
    w0 = np.zeros(n) if current_weights is None else current_weights
    return OptimizationInputs(
        date=rm.date,
        alpha=pd.Series(alpha, index=ids),
        risk_model=rm,
        current_weights=pd.Series(w0, index=ids),
        portfolio_value=portfolio_value,
        adv=pd.Series(adv, index=ids),
        half_spread=pd.Series(rng.uniform(2e-4, 1e-3, n), index=ids),
        borrow_fee=pd.Series(np.where(rng.random(n) < 0.05, 0.05, 0.0025), index=ids),
        restricted=restricted,
    )


def full_constraint_policy(factor_names: tuple[str, ...], **update: Any) -> Policy:
    """``default.yaml`` with a ±0.1 bound on *every* style factor (the full constraint set
    of bench/optimizer.py); ``update`` overrides policy fields."""
    styles = [f for f in factor_names if not is_structural_factor(f)]
    bounds = {f: Band(lo=-0.1, hi=0.1) for f in styles}
    return load_policy("default").model_copy(update={"factor_bounds": bounds, **update})


def perturbed_day_inputs(rm: RiskModel, day: int, w0: np.ndarray | None) -> OptimizationInputs:
    """Day ``day`` of a simulated run on ``rm``'s universe: perturbed style exposures, a
    rescaled factor covariance and specific risk, fresh alpha/ADV/spreads and 5 restricted
    names; ``w0`` is the previous day's solution (None: start flat)."""
    rng = np.random.default_rng(10_000 + day)
    B = rm.B.copy()
    styles = [k for k, f in enumerate(rm.factor_names) if not is_structural_factor(f)]
    B[:, styles] += 0.05 * rng.standard_normal((rm.n_assets, len(styles)))
    F = rm.F * rng.uniform(0.9, 1.1)
    D = rm.D * rng.uniform(0.95, 1.05, rm.n_assets)
    rm_day = RiskModel(rm.date, rm.security_ids, rm.factor_names, B, F, D)
    restricted = frozenset(rng.choice(rm.security_ids, 5, replace=False).tolist())
    inputs = synthetic_inputs(
        rm_day, day, current_weights=w0, restricted=restricted, alpha_scale=0.2
    )
    return replace(inputs, risk_model=rm_day)
