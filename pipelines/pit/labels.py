"""Forward-return labels and when they become usable.

For horizon N the label at date t is the forward return over (t, t + N]::

    fwd[t, i] = adj_close[t + N, i] / adj_close[t, i] − 1

It reads the close of t + N, so it is only **usable** (for training, or for
anything decided at date D) when ``t + N <= D`` in trading days:
``label_available_date(dates, N)[t] = dates[t + N]`` (NaT beyond the panel).
Labels are defined for in-universe securities at t only.

Residualized variants are cross-sectional per date t (over in-universe names
with a finite forward return):

* ``market``: fwd − Σ cap[t]·fwd / Σ cap[t]  (cap-weighted market forward return)
* ``sector``: fwd − mean of fwd over the same sector at t (equal-weighted)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from pipelines.pit.normalize import demean_by_group
from pipelines.pit.panel import Panel, wide

LabelKind = Literal["raw", "market", "sector"]
DEFAULT_HORIZONS: tuple[int, ...] = (5, 21)


def label_available_date(dates: pd.DatetimeIndex, horizon: int) -> pd.Series:
    """For each label date t, the first trading date at which the label is known: dates[t + N]."""
    avail = pd.Series(pd.NaT, index=dates, dtype="datetime64[ns]", name="available_date")
    if horizon < len(dates):
        avail.iloc[: len(dates) - horizon] = dates[horizon:].as_unit("ns").values
    return avail


@dataclass(frozen=True)
class LabelSet:
    """One label: wide values (label date x security) plus their availability dates."""

    name: str
    horizon: int
    kind: LabelKind
    values: pd.DataFrame
    available_date: pd.Series

    def usable_at(self, asof: pd.Timestamp | str) -> pd.DataFrame:
        """Values with every label not yet known at ``asof`` (available_date > asof) set to NaN."""
        known = (self.available_date <= pd.Timestamp(asof)).to_numpy()
        return self.values.where(pd.Series(known, index=self.values.index), axis=0)


def forward_returns(panel: Panel, horizon: int) -> np.ndarray:
    """(T, N) adj_close[t + N] / adj_close[t] − 1, NaN for the last N rows and outside the universe."""
    if horizon < 1:
        raise ValueError("horizon must be >= 1")
    px = panel.array("adj_close")
    out = np.full(px.shape, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[:-horizon] = px[horizon:] / px[:-horizon] - 1.0
    return np.where(panel.universe(), out, np.nan)


def market_residual(fwd: np.ndarray, panel: Panel) -> np.ndarray:
    """fwd minus the cap-weighted (cap at t) mean of fwd over the universe, per date."""
    cap = panel.array("market_cap")
    zeros = np.zeros(fwd.shape, dtype=np.int16)
    return demean_by_group(fwd, zeros, panel.universe(), weights=cap)


def sector_residual(fwd: np.ndarray, panel: Panel) -> np.ndarray:
    """fwd minus the equal-weighted mean of fwd over same-sector universe names, per date."""
    codes, _ = panel.sector_codes()
    return demean_by_group(fwd, codes, panel.universe())


def make_label(panel: Panel, horizon: int, kind: LabelKind = "market") -> LabelSet:
    """Build one label set (see module docstring for the definitions)."""
    fwd = forward_returns(panel, horizon)
    if kind == "market":
        fwd = market_residual(fwd, panel)
    elif kind == "sector":
        fwd = sector_residual(fwd, panel)
    elif kind != "raw":
        raise ValueError(f"unknown label kind {kind!r}")
    return LabelSet(
        name=f"fwd_ret_{horizon}d_{kind}",
        horizon=horizon,
        kind=kind,
        values=wide(fwd, panel),
        available_date=label_available_date(panel.dates, horizon),
    )


def make_labels(
    panel: Panel,
    horizons: Sequence[int] = DEFAULT_HORIZONS,
    kinds: Sequence[LabelKind] = ("raw", "market", "sector"),
) -> dict[str, LabelSet]:
    """All (horizon, kind) label sets keyed by name, e.g. ``fwd_ret_5d_market``."""
    out: dict[str, LabelSet] = {}
    for h in horizons:
        for k in kinds:
            label = make_label(panel, h, k)
            out[label.name] = label
    return out
