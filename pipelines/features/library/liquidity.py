"""Liquidity features: dollar volume, Amihud illiquidity, turnover."""

from __future__ import annotations

import numpy as np

from pipelines.features.registry import feature
from pipelines.pit.ops import rolling_mean, safe_div, safe_log
from pipelines.pit.panel import Panel


@feature(name="adv_21d", inputs=["dollar_volume"], lookback=20)
def adv_21d(panel: Panel) -> np.ndarray:
    """log of the 21-day average daily dollar volume (≥ 15 observed days)."""
    return safe_log(rolling_mean(panel.array("dollar_volume"), 21, min_periods=15))


@feature(name="amihud_21d", inputs=["ret", "dollar_volume"], lookback=20)
def amihud_21d(panel: Panel) -> np.ndarray:
    """Amihud illiquidity: mean over 21 days of |r| / dollar volume, ×1e6 (≥ 15 days)."""
    impact = safe_div(np.abs(panel.array("ret")), panel.array("dollar_volume"), positive_den=True)
    return rolling_mean(impact * 1e6, 21, min_periods=15)


@feature(name="turnover_21d", inputs=["volume", "shares_outstanding"], lookback=20)
def turnover_21d(panel: Panel) -> np.ndarray:
    """Mean over 21 days of volume / shares outstanding (≥ 15 days)."""
    daily = safe_div(panel.array("volume"), panel.array("shares_outstanding"), positive_den=True)
    return rolling_mean(daily, 21, min_periods=15)
