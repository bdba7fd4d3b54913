"""The factor risk model built from a point-in-time :class:`MarketSnapshot`.

Styles (raw characteristics; the risk model standardizes them cap-weighted each date):

* ``size``       — log market cap;
* ``momentum``   — sum of daily returns over sessions t−126 … t−21 (12-1 style, shortened
  to the snapshot's window);
* ``value``      — book equity / market cap (book as known on the decision day);
* ``volatility`` — 63-session standard deviation of daily returns;
* ``liquidity``  — log of the 20-session mean dollar volume.

Sectors come from the security master as known on the day. Estimation is
:func:`pipelines.portfolio.risk_model.build_risk_model` (WLS factor returns, EWMA
covariances, shrunk specific risk).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from pandas.api.indexers import BaseIndexer

from pipelines.errors import AlphaFactoryError
from pipelines.lake.interface import Store
from pipelines.pit.snapshot import MarketSnapshot
from pipelines.portfolio.risk_model import (
    RiskModel,
    RiskModelConfig,
    RiskModelInputs,
    build_risk_model,
)


class NoUniverseError(AlphaFactoryError, LookupError):
    """No security is tradable on the snapshot's day (listed, with a sector and a close)."""


STYLE_NAMES = ("size", "momentum", "value", "volatility", "liquidity")


class _ColumnWindows(BaseIndexer):
    """Trailing windows of ``window_size`` rows over a panel flattened column by column
    (``n_rows`` values per column) that never reach into the previous column."""

    def __init__(self, n_rows: int, window_size: int) -> None:
        super().__init__(window_size=window_size)
        self.n_rows = n_rows
        self.window = window_size

    def get_window_bounds(
        self,
        num_values: int = 0,
        min_periods: int | None = None,
        center: bool | None = None,
        closed: str | None = None,
        step: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        end = np.arange(1, num_values + 1, dtype=np.int64)
        first = (np.arange(num_values, dtype=np.int64) // self.n_rows) * self.n_rows
        return np.maximum(first, end - self.window), end


def rolling_panel(
    panel: pd.DataFrame, window: int, min_periods: int, stat: Literal["sum", "mean", "std"]
) -> pd.DataFrame:
    """``panel.rolling(window, min_periods=min_periods).<stat>()`` (``std`` with ddof=1),
    bit for bit, in one pass over the whole panel instead of one per column.

    Why this is exact: pandas' rolling kernels take each row's window bounds and restart
    their running state whenever a window does not overlap the previous one, so the
    column-major flattened panel with windows clipped at each column's first row runs,
    per column, the very float operations of the per-column call
    (``tests/portfolio/test_styles.py`` holds the two equal on awkward data).
    """
    n_rows, n_cols = panel.shape
    if n_rows == 0 or n_cols == 0:
        return getattr(panel.rolling(window, min_periods=min_periods), stat)()
    flat = pd.Series(panel.to_numpy(dtype=float).T.reshape(-1))
    rolled = flat.rolling(_ColumnWindows(n_rows, window), min_periods=min_periods)
    values = (rolled.std(ddof=1) if stat == "std" else getattr(rolled, stat)()).to_numpy()
    return pd.DataFrame(values.reshape(n_cols, n_rows).T, index=panel.index, columns=panel.columns)


def style_panels(
    snapshot: MarketSnapshot, market_cap: pd.DataFrame | None = None
) -> dict[str, pd.DataFrame]:
    """The raw style panels of the module docstring, aligned with ``snapshot.close``
    (``market_cap``: ``snapshot.market_cap()`` when the caller already has it)."""
    ret = snapshot.returns
    mcap = snapshot.market_cap() if market_cap is None else market_cap
    dollar = rolling_panel(snapshot.close * snapshot.volume, 20, 5, "mean")
    book = snapshot.book_equity.reindex(snapshot.close.columns)
    with np.errstate(divide="ignore", invalid="ignore"):
        size = pd.DataFrame(np.log(mcap.where(mcap > 0)), index=mcap.index, columns=mcap.columns)
        liquidity = pd.DataFrame(
            np.log(dollar.where(dollar > 0)), index=dollar.index, columns=dollar.columns
        )
        value = (1.0 / mcap.where(mcap > 0)).mul(book, axis=1)
    momentum = rolling_panel(ret.shift(21), 105, 20, "sum")
    volatility = rolling_panel(ret, 63, 20, "std")
    panels: dict[str, pd.DataFrame] = {
        "size": size,
        "momentum": momentum,
        "value": value,
        "volatility": volatility,
        "liquidity": liquidity,
    }
    # A style no security has today cannot be a factor (e.g. no fundamentals loaded yet).
    today = pd.Timestamp(snapshot.day)
    return {k: v for k, v in panels.items() if today in v.index and v.loc[today].notna().any()}


def risk_inputs(snapshot: MarketSnapshot) -> RiskModelInputs:
    """:class:`RiskModelInputs` for the snapshot's universe."""
    ids = snapshot.universe
    if not ids:
        raise NoUniverseError(f"no tradable securities on {snapshot.day}")
    # Every panel shares ``snapshot.close``'s axes: take the universe's columns by
    # position once instead of a label lookup per panel.
    pos = snapshot.close.columns.get_indexer(pd.Index(ids))
    index = snapshot.close.index[1:]
    columns = snapshot.close.columns[pos]

    def universe(panel: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(panel.to_numpy()[1:, pos], index=index, columns=columns)

    mcap = snapshot.market_cap()
    return RiskModelInputs(
        returns=universe(snapshot.returns),
        market_cap=universe(mcap),
        sectors=snapshot.sectors.reindex(ids),
        styles={k: universe(v) for k, v in style_panels(snapshot, mcap).items()},
    )


@dataclass(frozen=True)
class SnapshotRiskModel:
    """Builds the risk model from the snapshot (see module docstring)."""

    config: RiskModelConfig = field(default_factory=RiskModelConfig)

    def risk_model(self, store: Store, day: dt.date, snapshot: MarketSnapshot) -> RiskModel:
        inputs = risk_inputs(snapshot)
        return build_risk_model(inputs, as_of=pd.Timestamp(day), config=self.config)
