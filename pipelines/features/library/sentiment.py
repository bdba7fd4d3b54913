"""Alternative-data sentiment features."""

from __future__ import annotations

import numpy as np

from pipelines.features.registry import feature
from pipelines.pit.ops import rolling_mean
from pipelines.pit.panel import Panel


@feature(name="sentiment_5d", inputs=["sentiment"], lookback=4)
def sentiment_5d(panel: Panel) -> np.ndarray:
    """Mean sentiment over the last 5 days (≥ 3 observed)."""
    return rolling_mean(panel.array("sentiment"), 5, min_periods=3)


@feature(name="sentiment_surprise", inputs=["sentiment"], lookback=62)
def sentiment_surprise(panel: Panel) -> np.ndarray:
    """5-day mean sentiment minus its 63-day mean (≥ 3 and ≥ 40 observed)."""
    s = panel.array("sentiment")
    return rolling_mean(s, 5, min_periods=3) - rolling_mean(s, 63, min_periods=40)
