"""Forward-return labels and when they become usable.

For horizon N the label at date t is the forward return over (t, t + N]::

    fwd[t, i] = adj_close[t + N, i] / adj_close[t, i] − 1

It reads the close of t + N, so it is only **usable** (for training, or for
anything decided at date D) when ``t + N <= D`` in trading days:
``label_available_date(dates, N)[t] = dates[t + N]`` (NaT beyond the panel).
Labels are defined for in-universe securities at t only.

Residualized variants are cross-sectional per date t (over in-universe names
with a finite forward return):

* ``market``: fwd − Σ w[t]·fwd / Σ w[t], the market forward return with weights w[t]:
  the market caps at t when they are known for at least :data:`MIN_CAP_COVERAGE` of the
  date's labelled names (names without a cap then weigh 0 but are still labelled), else
  **equal weights** (w = 1) for that date. A vendor without fundamentals (no shares
  outstanding, so no caps) thus gets the equal-weighted market on every date, and a date
  where caps cover only a few names (fresh listings, a partial fundamentals feed) is not
  residualized against a "market" of that handful. The choice is per date and reads caps
  at t only, so it is point-in-time like the label itself.
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
#: Share of a date's labelled names (in universe, finite forward return) that must have a
#: positive market cap for the market label to cap-weight that date (else equal weight).
MIN_CAP_COVERAGE = 0.5


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
        values = self.values
        # numpy, not DataFrame.where: pandas broadcasts the row mask to a frame of
        # per-column Series first, which cost ~0.2 s on a training history
        out = np.where(known[:, None], values.to_numpy(), np.nan)
        return pd.DataFrame(out, index=values.index, columns=values.columns)


def forward_returns(panel: Panel, horizon: int) -> np.ndarray:
    """(T, N) adj_close[t + N] / adj_close[t] − 1, NaN for the last N rows and outside the universe."""
    if horizon < 1:
        raise ValueError("horizon must be >= 1")
    px = panel.array("adj_close")
    out = np.full(px.shape, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[:-horizon] = px[horizon:] / px[:-horizon] - 1.0
    return np.where(panel.universe(), out, np.nan)


def market_weights(fwd: np.ndarray, panel: Panel) -> np.ndarray:
    """(T, N) weights of the market return per date: caps at t, or 1 where caps are unknown.

    Date t uses the caps (0 for a name without one) when at least :data:`MIN_CAP_COVERAGE`
    of its labelled names have a positive cap, otherwise every name weighs 1 (see the
    module docstring). A panel without a ``market_cap`` field is equal-weighted.
    """
    universe = panel.universe()
    has_caps = "market_cap" in panel.fields
    cap = panel.array("market_cap") if has_caps else np.full(fwd.shape, np.nan)
    labelled = universe & np.isfinite(fwd)
    with np.errstate(invalid="ignore"):
        capped = labelled & np.isfinite(cap) & (cap > 0)
    n_labelled = labelled.sum(axis=1)
    n_capped = capped.sum(axis=1)
    use_caps = (n_capped > 0) & (n_capped >= MIN_CAP_COVERAGE * n_labelled)
    return np.where(use_caps[:, None], np.where(capped, cap, 0.0), 1.0)


def market_residual(fwd: np.ndarray, panel: Panel) -> np.ndarray:
    """fwd minus the market mean of fwd over the universe per date (:func:`market_weights`)."""
    zeros = np.zeros(fwd.shape, dtype=np.int16)
    return demean_by_group(fwd, zeros, panel.universe(), weights=market_weights(fwd, panel))


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
