"""Profitability, accruals and investment features."""

from __future__ import annotations

import numpy as np

from pipelines.features.registry import feature
from pipelines.pit.ops import safe_div, shift
from pipelines.pit.panel import Panel


@feature(name="roe", inputs=["net_income", "book_equity"], lookback=0)
def roe(panel: Panel) -> np.ndarray:
    """Return on equity: trailing net income / book equity (book > 0 only)."""
    return safe_div(panel.array("net_income"), panel.array("book_equity"), positive_den=True)


@feature(name="roa", inputs=["net_income", "total_assets"], lookback=0)
def roa(panel: Panel) -> np.ndarray:
    """Return on assets: trailing net income / total assets."""
    return safe_div(panel.array("net_income"), panel.array("total_assets"), positive_den=True)


@feature(name="accruals", inputs=["net_income", "operating_cash_flow", "total_assets"], lookback=0)
def accruals(panel: Panel) -> np.ndarray:
    """(net income − operating cash flow) / total assets (high = low earnings quality)."""
    return safe_div(
        panel.array("net_income") - panel.array("operating_cash_flow"),
        panel.array("total_assets"),
        positive_den=True,
    )


@feature(name="asset_growth_252d", inputs=["total_assets"], lookback=252)
def asset_growth_252d(panel: Panel) -> np.ndarray:
    """Investment: total assets[t] / total assets[t − 252] − 1."""
    assets = panel.array("total_assets")
    return safe_div(assets, shift(assets, 252), positive_den=True) - 1.0
