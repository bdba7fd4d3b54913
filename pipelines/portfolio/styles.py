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
import inspect
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


# pandas checks a custom indexer's ``get_window_bounds`` signature on every ``rolling``
# call with ``inspect.signature``, which rebuilds it each time (most of what three rolling
# calls per risk model spent outside their kernels); a ``__signature__`` is read as is.
_ColumnWindows.get_window_bounds.__signature__ = inspect.signature(  # type: ignore[attr-defined]
    _ColumnWindows.get_window_bounds
)


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
    values = _rolling(panel.to_numpy(dtype=float), window, min_periods, stat)
    return pd.DataFrame(values, index=panel.index, columns=panel.columns)


def _rolling(
    values: np.ndarray, window: int, min_periods: int, stat: Literal["sum", "mean", "std"]
) -> np.ndarray:
    """:func:`rolling_panel` of a non-empty (rows × columns) array."""
    n_rows, n_cols = values.shape
    flat = pd.Series(values.T.reshape(-1))
    rolled = flat.rolling(_ColumnWindows(n_rows, window), min_periods=min_periods)
    out = (rolled.std(ddof=1) if stat == "std" else getattr(rolled, stat)()).to_numpy()
    return out.reshape(n_cols, n_rows).T


def style_panels(
    snapshot: MarketSnapshot, market_cap: pd.DataFrame | None = None
) -> dict[str, pd.DataFrame]:
    """The raw style panels of the module docstring, aligned with ``snapshot.close``
    (``market_cap``: ``snapshot.market_cap()`` when the caller already has it)."""
    mcap = snapshot.market_cap() if market_cap is None else market_cap
    index, columns = snapshot.close.index, snapshot.close.columns
    return {
        name: pd.DataFrame(values, index=index, columns=columns)
        for name, values in _style_arrays(snapshot, mcap.to_numpy(dtype=float)).items()
    }


def _style_arrays(snapshot: MarketSnapshot, mcap: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`style_panels` as arrays on ``snapshot.close``'s grid (``mcap``: the market
    cap on it). The very element-wise operations pandas ran on the aligned frames, on
    their values: the frames share one grid, so there was nothing to align."""
    close = snapshot.close.to_numpy(dtype=float)
    ret = snapshot.returns.to_numpy(dtype=float)
    n_rows, n_cols = close.shape
    empty = n_rows == 0 or n_cols == 0
    volume = snapshot.volume.to_numpy(dtype=float)
    book = snapshot.book_equity.reindex(snapshot.close.columns).to_numpy(
        dtype=float, na_value=np.nan
    )
    # ret.shift(21): the first 21 rows unknown.
    shifted = np.full_like(ret, np.nan)
    shifted[21:] = ret[:-21]
    with np.errstate(divide="ignore", invalid="ignore"):
        positive = np.where(mcap > 0, mcap, np.nan)
        dollar = close * volume if empty else _rolling(close * volume, 20, 5, "mean")
        panels = {
            "size": np.log(positive),
            "momentum": shifted if empty else _rolling(shifted, 105, 20, "sum"),
            "value": (1.0 / positive) * book,
            "volatility": ret if empty else _rolling(ret, 63, 20, "std"),
            "liquidity": np.log(np.where(dollar > 0, dollar, np.nan)),
        }
    # A style no security has today cannot be a factor (e.g. no fundamentals loaded yet).
    today = pd.Timestamp(snapshot.day)
    if empty or today not in snapshot.close.index:
        return {}
    row = snapshot.close.index.get_loc(today)
    return {k: v for k, v in panels.items() if (~np.isnan(v[row])).any()}


def risk_inputs(snapshot: MarketSnapshot) -> RiskModelInputs:
    """:class:`RiskModelInputs` for the snapshot's universe."""
    ids = snapshot.universe
    if not ids:
        raise NoUniverseError(f"no tradable securities on {snapshot.day}")
    # Every panel shares ``snapshot.close``'s axes: take the universe's columns by
    # position once instead of a label lookup per panel.
    id_index = pd.Index(ids)
    pos = snapshot.close.columns.get_indexer(id_index)
    index = snapshot.close.index[1:]
    columns = snapshot.close.columns[pos]

    def universe(values: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(values[1:, pos], index=index, columns=columns)

    mcap = snapshot.market_cap().to_numpy(dtype=float)
    return RiskModelInputs(
        returns=universe(snapshot.returns.to_numpy()),
        market_cap=universe(mcap),
        sectors=snapshot.sectors.reindex(id_index),
        styles={k: universe(v) for k, v in _style_arrays(snapshot, mcap).items()},
    )


@dataclass(frozen=True)
class SnapshotRiskModel:
    """Builds the risk model from the snapshot (see module docstring)."""

    config: RiskModelConfig = field(default_factory=RiskModelConfig)

    def risk_model(self, store: Store, day: dt.date, snapshot: MarketSnapshot) -> RiskModel:
        inputs = risk_inputs(snapshot)
        return build_risk_model(inputs, as_of=pd.Timestamp(day), config=self.config)
