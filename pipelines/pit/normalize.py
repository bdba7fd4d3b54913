"""Per-date cross-sectional normalization over in-universe securities only.

Every function takes a wide (T, N) array ``x`` and a (T, N) bool ``universe``
mask and works row by row (one date at a time), so a row's output depends only
on that row: normalization never mixes dates and is point-in-time by
construction. Cells outside the universe or non-finite come out NaN.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

_MAD_TO_SIGMA = 1.4826  # 1 / Φ⁻¹(3/4): MAD of a normal sample ≈ σ / 1.4826


def masked(x: np.ndarray, universe: np.ndarray) -> np.ndarray:
    """``x`` with NaN outside ``universe`` and at its non-finite cells: the only input of
    each row's output in the normalisations here."""
    return np.where(universe & np.isfinite(x), x, np.nan)


_masked = masked


def _row_count(x: np.ndarray) -> np.ndarray:
    return np.isfinite(x).sum(axis=1, keepdims=True)


def zscore(x: np.ndarray, universe: np.ndarray, min_count: int = 2) -> np.ndarray:
    """(x − mean_t) / std_t with mean/std (ddof=0) over the row's universe; NaN if std = 0."""
    xm = _masked(x, universe)
    n = _row_count(xm)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(xm, axis=1, keepdims=True) / n
        dev = xm - mean
        std = np.sqrt(np.nansum(dev * dev, axis=1, keepdims=True) / n)
        out = dev / std
    return np.where((n >= min_count) & (std > 0), out, np.nan)


def winsorize_quantile(
    x: np.ndarray, universe: np.ndarray, lower: float = 0.01, upper: float = 0.99
) -> np.ndarray:
    """Clip each row to its [lower, upper] quantiles (linear interpolation) over the universe."""
    if not 0.0 <= lower < upper <= 1.0:
        raise ValueError("need 0 <= lower < upper <= 1")
    xm = _masked(x, universe)
    out = np.full(xm.shape, np.nan)
    rows = _row_count(xm)[:, 0] > 0
    if rows.any():
        lo, hi = np.nanquantile(xm[rows], [lower, upper], axis=1, keepdims=True)
        out[rows] = np.clip(xm[rows], lo, hi)
    return out


def winsorize_mad(x: np.ndarray, universe: np.ndarray, n_mad: float = 5.0) -> np.ndarray:
    """Clip each row to median ± n_mad · 1.4826 · MAD (robust σ) over the universe."""
    xm = _masked(x, universe)
    out = np.full(xm.shape, np.nan)
    rows = _row_count(xm)[:, 0] > 0
    if rows.any():
        sub = xm[rows]
        med = np.nanmedian(sub, axis=1, keepdims=True)
        width = n_mad * _MAD_TO_SIGMA * np.nanmedian(np.abs(sub - med), axis=1, keepdims=True)
        out[rows] = np.clip(sub, med - width, med + width)
    return out


def rank_gauss(x: np.ndarray, universe: np.ndarray) -> np.ndarray:
    """Φ⁻¹((rank − 0.5) / n) per row: average ranks (ties share), n = valid cells in the row.

    Output is approximately N(0, 1) across the row whatever the input's
    distribution; robust to outliers, so it needs no winsorization first.
    """
    xm = _masked(x, universe)
    n = _row_count(xm)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.isfinite(xm), ndtri((average_ranks(xm) - 0.5) / n), np.nan)


def average_ranks(xm: np.ndarray) -> np.ndarray:
    """1-based ranks of each row's finite cells, ties sharing their average rank (as
    ``scipy.stats.rankdata(method="average")``, exact half-integers); the other cells'
    values are undefined."""
    T, N = xm.shape
    ranks = np.empty((T, N))
    if not xm.size:
        return ranks
    # NaN as +inf: it still sorts last, and numpy keeps its vectorized sort (a row with a
    # NaN falls back to a scalar sort ~3x slower); the order within ties does not matter
    order = np.argsort(np.where(np.isnan(xm), np.inf, xm), axis=1)
    s = np.take_along_axis(xm, order, axis=1)
    starts = np.ones((T, N), dtype=bool)
    np.not_equal(s[:, 1:], s[:, :-1], out=starts[:, 1:])
    pos = np.arange(N)
    # each sorted position's tie group [first, last] (0-based positions in the row)
    first = np.where(starts, pos, 0)
    np.maximum.accumulate(first, axis=1, out=first)
    ends = np.ones((T, N), dtype=bool)
    ends[:, :-1] = starts[:, 1:]
    last = np.where(ends, pos, N - 1)[:, ::-1]
    last = np.minimum.accumulate(last, axis=1)[:, ::-1]
    np.put_along_axis(ranks, order, (first + last + 2) * 0.5, axis=1)
    return ranks


def demean_by_group(
    x: np.ndarray, codes: np.ndarray, universe: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """x minus its (weighted) mean within each (date, group) over the universe's finite cells.

    Cells without a group (code −1) or whose group is empty come out NaN.
    """
    T, N = x.shape
    n_groups = int(codes.max()) + 1 if codes.size else 0
    ok = universe & np.isfinite(x) & (codes >= 0)
    w = np.ones_like(x) if weights is None else np.where(np.isfinite(weights), weights, 0.0)
    ok &= w > 0
    gid = (np.arange(T)[:, None] * max(n_groups, 1) + np.maximum(codes, 0)).ravel()
    size = T * max(n_groups, 1)
    num = np.bincount(
        gid, weights=np.where(ok, w * np.where(ok, x, 0.0), 0.0).ravel(), minlength=size
    )
    den = np.bincount(gid, weights=np.where(ok, w, 0.0).ravel(), minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (num / den)[gid].reshape(T, N)
    return np.where((codes >= 0) & (den[gid].reshape(T, N) > 0), x - mean, np.nan)
