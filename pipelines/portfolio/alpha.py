"""Scores become expected returns here, and only here.

``zscore`` is the cross-sectional z-score winsorized at ±3 (also what the builtin scorer
ranks by); :func:`expected_returns` is Grinold's rule ``alpha_i = ic · σ_i · z_i`` — the
expected next-session return per unit of score, with σ the daily volatility.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def zscore(x: pd.Series) -> pd.Series:
    """Cross-sectional z-score, winsorized at ±3 (NaN stays NaN; no spread ⇒ 0)."""
    sd = x.std(ddof=0)
    if not np.isfinite(sd) or sd == 0:
        return x * 0.0
    z = (x - x.mean()) / sd
    # np.clip is what Series.clip does to floats (bounds replace what lies beyond them,
    # NaN stays), without its masking machinery.
    return pd.Series(np.clip(z.to_numpy(), -3.0, 3.0), index=z.index, name=z.name)


def expected_returns(
    scores: pd.Series,
    volatility: pd.Series,
    ic: float = 0.05,
    universe: Sequence[str] | None = None,
) -> pd.Series:
    """``alpha_i = ic · σ_i · z_i`` on ``universe`` (default: the scored securities).

    ``z`` is :func:`zscore` of ``scores`` (indexed by security id) over every score; a
    universe member without a score has no view (0). A missing volatility is the median of
    the universe's (0.02 when none is known).
    """
    # One index for both alignments (building one from 3,000 ids is most of a reindex).
    ids = pd.Index(list(scores.index) if universe is None else list(universe))
    z = zscore(scores.astype(float)).reindex(ids).fillna(0.0)
    sigma = volatility.reindex(ids).astype(float)
    sigma = sigma.fillna(float(sigma.median()) if sigma.notna().any() else 0.02)
    return (ic * sigma * z).astype(float).rename("alpha")
