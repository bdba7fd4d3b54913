"""Risk features: total volatility, market beta and idiosyncratic volatility."""

from __future__ import annotations

import numpy as np

from pipelines.features.registry import feature
from pipelines.pit.ops import (
    cap_weighted_market_return,
    rolling_count,
    rolling_std,
    rolling_sum_valid,
)
from pipelines.pit.panel import Panel

BETA_WINDOW = 252
BETA_MIN_OBS = 126
_MARKET_INPUTS = ["ret", "market_cap", "in_universe"]


@feature(name="volatility_21d", inputs=["ret"], lookback=20)
def volatility_21d(panel: Panel) -> np.ndarray:
    """Std of daily returns over 21 days (≥ 15 observed)."""
    return rolling_std(panel.array("ret"), 21, min_periods=15)


@feature(name="volatility_63d", inputs=["ret"], lookback=62)
def volatility_63d(panel: Panel) -> np.ndarray:
    """Std of daily returns over 63 days (≥ 42 observed)."""
    return rolling_std(panel.array("ret"), 63, min_periods=42)


def market_return(panel: Panel) -> np.ndarray:
    """Cap-weighted in-universe market return per date, cached on the panel."""
    cached = panel.cache.get("market_return")
    if cached is None:
        cached = cap_weighted_market_return(
            panel.array("ret"), panel.array("market_cap"), panel.universe()
        )
        panel.cache["market_return"] = cached
    return cached  # type: ignore[no-any-return]


def _market_regression(panel: Panel) -> tuple[np.ndarray, np.ndarray]:
    """OLS of r[i] on the market over the trailing 252 days: (beta, residual std).

    With centred sums over pairwise-valid days (n ≥ 126)::

        Sxx = Σm² − (Σm)²/n,  Sxy = Σrm − ΣrΣm/n,  Syy = Σr² − (Σr)²/n
        beta = Sxy / Sxx,     idio = sqrt((Syy − Sxy²/Sxx) / (n − 2))
    """
    cached = panel.cache.get("market_regression")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    r = panel.array("ret")
    m = market_return(panel)[:, None]
    ok = np.isfinite(r) & np.isfinite(m)
    r0 = np.where(ok, r, 0.0)
    m0 = np.where(ok, m, 0.0)
    n = rolling_count(ok, BETA_WINDOW)
    sums = {
        key: rolling_sum_valid(values, BETA_WINDOW)
        for key, values in {
            "r": r0,
            "m": m0,
            "rm": r0 * m0,
            "mm": m0 * m0,
            "rr": r0 * r0,
        }.items()
    }
    with np.errstate(invalid="ignore", divide="ignore"):
        sxx = sums["mm"] - sums["m"] ** 2 / n
        sxy = sums["rm"] - sums["r"] * sums["m"] / n
        syy = sums["rr"] - sums["r"] ** 2 / n
        beta = sxy / sxx
        idio = np.sqrt(np.maximum(syy - sxy * beta, 0.0) / (n - 2))
    good = (n >= BETA_MIN_OBS) & (sxx > 0)
    result = (np.where(good, beta, np.nan), np.where(good, idio, np.nan))
    panel.cache["market_regression"] = result
    return result


@feature(name="beta_252d", inputs=_MARKET_INPUTS, lookback=BETA_WINDOW)
def beta_252d(panel: Panel) -> np.ndarray:
    """Beta vs the cap-weighted market over 252 days (lookback 252: weights use t−1 caps)."""
    return _market_regression(panel)[0]


@feature(name="idio_vol_252d", inputs=_MARKET_INPUTS, lookback=BETA_WINDOW)
def idio_vol_252d(panel: Panel) -> np.ndarray:
    """Residual std of the 252-day market regression (daily units)."""
    return _market_regression(panel)[1]
