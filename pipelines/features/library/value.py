"""Size and value features (point-in-time fundamentals over market cap)."""

from __future__ import annotations

import numpy as np

from pipelines.features.registry import feature
from pipelines.pit.ops import safe_div, safe_log
from pipelines.pit.panel import Panel


@feature(name="size_log_mcap", inputs=["market_cap"], lookback=0)
def size_log_mcap(panel: Panel) -> np.ndarray:
    """log(market cap)."""
    return safe_log(panel.array("market_cap"))


@feature(name="book_to_price", inputs=["book_equity", "market_cap"], lookback=0)
def book_to_price(panel: Panel) -> np.ndarray:
    """Book equity / market cap."""
    return safe_div(panel.array("book_equity"), panel.array("market_cap"), positive_den=True)


@feature(name="earnings_yield", inputs=["net_income", "market_cap"], lookback=0)
def earnings_yield(panel: Panel) -> np.ndarray:
    """Trailing net income / market cap (E/P; negative earnings kept)."""
    return safe_div(panel.array("net_income"), panel.array("market_cap"), positive_den=True)


@feature(name="sales_to_price", inputs=["revenue", "market_cap"], lookback=0)
def sales_to_price(panel: Panel) -> np.ndarray:
    """Trailing revenue / market cap."""
    return safe_div(panel.array("revenue"), panel.array("market_cap"), positive_den=True)


@feature(name="cfo_to_price", inputs=["operating_cash_flow", "market_cap"], lookback=0)
def cfo_to_price(panel: Panel) -> np.ndarray:
    """Trailing operating cash flow / market cap."""
    return safe_div(
        panel.array("operating_cash_flow"), panel.array("market_cap"), positive_den=True
    )
