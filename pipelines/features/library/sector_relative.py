"""Sector-relative versions of base features: value minus its sector median per date.

The median is over in-universe securities of the same sector on the same date;
every security with a sector gets ``x − median``. Lookback = the base feature's.
"""

from __future__ import annotations

import numpy as np

from pipelines.features.library import momentum, quality, risk, value
from pipelines.features.registry import feature
from pipelines.pit.ops import group_median
from pipelines.pit.panel import Panel

_SECTOR = ["sector", "in_universe"]


def sector_relative(x: np.ndarray, panel: Panel) -> np.ndarray:
    """x[t, i] − median{x[t, j] : sector[t, j] = sector[t, i], j in universe at t}."""
    codes, _ = panel.sector_codes()
    return x - group_median(x, codes, panel.universe())


@feature(name="momentum_12_1_sector_rel", inputs=["adj_close", *_SECTOR], lookback=252)
def momentum_12_1_sector_rel(panel: Panel) -> np.ndarray:
    """12-1 momentum minus its sector median."""
    return sector_relative(momentum.momentum_12_1(panel), panel)


@feature(name="volatility_63d_sector_rel", inputs=["ret", *_SECTOR], lookback=62)
def volatility_63d_sector_rel(panel: Panel) -> np.ndarray:
    """63-day volatility minus its sector median."""
    return sector_relative(risk.volatility_63d(panel), panel)


@feature(
    name="earnings_yield_sector_rel", inputs=["net_income", "market_cap", *_SECTOR], lookback=0
)
def earnings_yield_sector_rel(panel: Panel) -> np.ndarray:
    """Earnings yield minus its sector median."""
    return sector_relative(value.earnings_yield(panel), panel)


@feature(name="roe_sector_rel", inputs=["net_income", "book_equity", *_SECTOR], lookback=0)
def roe_sector_rel(panel: Panel) -> np.ndarray:
    """ROE minus its sector median."""
    return sector_relative(quality.roe(panel), panel)
