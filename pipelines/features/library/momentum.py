"""Price momentum and reversal features (from adjusted closes / daily returns)."""

from __future__ import annotations

import numpy as np

from pipelines.features.registry import feature
from pipelines.pit.ops import rolling_max, shift
from pipelines.pit.panel import Panel


def _past_return(adj_close: np.ndarray, start_lag: int, end_lag: int = 0) -> np.ndarray:
    """adj_close[t − end_lag] / adj_close[t − start_lag] − 1 (ratio, so adjustment-invariant)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        end = shift(adj_close, end_lag) if end_lag else adj_close
        return end / shift(adj_close, start_lag) - 1.0


@feature(name="momentum_12_1", inputs=["adj_close"], lookback=252)
def momentum_12_1(panel: Panel) -> np.ndarray:
    """12-month return skipping the last month: P[t−21] / P[t−252] − 1."""
    return _past_return(panel.array("adj_close"), 252, 21)


@feature(name="reversal_5d", inputs=["adj_close"], lookback=5)
def reversal_5d(panel: Panel) -> np.ndarray:
    """Short-term reversal: −(P[t] / P[t−5] − 1)."""
    return -_past_return(panel.array("adj_close"), 5)


@feature(name="reversal_21d", inputs=["adj_close"], lookback=21)
def reversal_21d(panel: Panel) -> np.ndarray:
    """One-month reversal: −(P[t] / P[t−21] − 1)."""
    return -_past_return(panel.array("adj_close"), 21)


@feature(name="max_ret_21d", inputs=["ret"], lookback=20)
def max_ret_21d(panel: Panel) -> np.ndarray:
    """Lottery demand (MAX): largest daily return over the last 21 days (≥ 15 observed)."""
    return rolling_max(panel.array("ret"), 21, min_periods=15)
