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

import numpy as np
import pandas as pd

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


def style_panels(snapshot: MarketSnapshot) -> dict[str, pd.DataFrame]:
    """The raw style panels of the module docstring, aligned with ``snapshot.close``."""
    ret = snapshot.returns
    mcap = snapshot.market_cap()
    dollar = (snapshot.close * snapshot.volume).rolling(20, min_periods=5).mean()
    book = snapshot.book_equity.reindex(snapshot.close.columns)
    with np.errstate(divide="ignore", invalid="ignore"):
        size = pd.DataFrame(np.log(mcap.where(mcap > 0)), index=mcap.index, columns=mcap.columns)
        liquidity = pd.DataFrame(
            np.log(dollar.where(dollar > 0)), index=dollar.index, columns=dollar.columns
        )
        value = (1.0 / mcap.where(mcap > 0)).mul(book, axis=1)
    momentum = ret.shift(21).rolling(105, min_periods=20).sum()
    volatility = ret.rolling(63, min_periods=20).std(ddof=1)
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
    returns = snapshot.returns[ids].iloc[1:]
    mcap = snapshot.market_cap()[ids].iloc[1:]
    styles = {k: v[ids].iloc[1:] for k, v in style_panels(snapshot).items()}
    return RiskModelInputs(
        returns=returns,
        market_cap=mcap,
        sectors=snapshot.sectors.reindex(ids),
        styles=styles,
    )


@dataclass(frozen=True)
class SnapshotRiskModel:
    """Builds the risk model from the snapshot (see module docstring)."""

    config: RiskModelConfig = field(default_factory=RiskModelConfig)

    def risk_model(self, store: Store, day: dt.date, snapshot: MarketSnapshot) -> RiskModel:
        inputs = risk_inputs(snapshot)
        return build_risk_model(inputs, as_of=pd.Timestamp(day), config=self.config)
