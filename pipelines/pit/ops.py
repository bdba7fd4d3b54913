"""Vectorized time-series and cross-sectional primitives over wide (T, N) arrays.

Point-in-time & window-invariance contract: every rolling result at row ``t``
depends only on rows ``[t − window + 1, t]`` **and is computed with a summation
order fixed relative to t**. Rolling sums are *end-anchored binary trees*: a
window ``w = 2^a + 2^b + ...`` is the sum of power-of-two blocks, each block
built by doubling (``S_2k[t] = S_k[t] + S_k[t − k]``). That costs
``O(log w)`` full-array passes (like a cumulative sum, no per-security loops)
yet, unlike ``cumsum[t] − cumsum[t − w]``, the result does not depend on how much
history precedes the window — so computing a single date from its lookback
window is *bit-identical* to computing the full history, which is what mapped
daily tasks rely on.

Rows without a full window (``t < w − 1``) are NaN.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Reducer = Callable[..., np.ndarray]


def shift(x: np.ndarray, periods: int) -> np.ndarray:
    """``out[t] = x[t − periods]`` along axis 0 (NaN-padded); ``periods >= 0``."""
    if periods < 0:
        raise ValueError("only backward (lagging) shifts are point-in-time")
    out = np.full(x.shape, np.nan)
    if periods < x.shape[0]:
        out[periods:] = x[: x.shape[0] - periods]
    return out


def _window_reduce(x: np.ndarray, window: int, op: Reducer) -> np.ndarray:
    """End-anchored tree reduction of ``op`` over ``[t − window + 1, t]`` along axis 0.

    Uses three buffers (two ping-pong blocks and the accumulator) and in-place
    ufuncs, so the cost is ~(2·log2(window)) memory passes with no per-pass allocation.
    """
    if window < 1:
        raise ValueError("window must be >= 1")
    T = x.shape[0]
    acc = np.full(x.shape, np.nan)
    if window > T:
        return acc
    block = x  # block[t] = op over [t − span + 1, t]; rows t < span − 1 are NaN
    spare: np.ndarray | None = None
    span, offset, started = 1, 0, False
    while span <= window:
        if window & span:
            # fold in the block ending `offset` rows before t (blocks tile the window from its end)
            if not started:
                acc[offset:] = block[: T - offset]
                started = True
            else:
                op(acc[offset:], block[: T - offset], out=acc[offset:])
            offset += span
        if 2 * span <= window:
            if spare is None or spare is block:
                spare = np.empty(x.shape)
            op(block[span:], block[: T - span], out=spare[span:])
            spare[:span] = np.nan
            block, spare = spare, (block if block is not x else None)
        span *= 2
    acc[: window - 1] = np.nan
    return acc


def rolling_count(finite: np.ndarray, window: int) -> np.ndarray:
    """Number of True cells over the trailing window (float64; NaN for t < window − 1).

    Integer cumulative sums are exact, so ``C[t] − C[t − w]`` does not depend on
    how much history precedes the window.
    """
    T = finite.shape[0]
    out = np.full(finite.shape, np.nan)
    if window > T:
        return out
    csum = np.cumsum(finite, axis=0, dtype=np.int64)
    out[window - 1] = csum[window - 1]
    out[window:] = csum[window:] - csum[: T - window]
    return out


def rolling_sum_valid(x0: np.ndarray, window: int) -> np.ndarray:
    """Σ over the trailing window of an array already zero-filled where missing (no NaN checks)."""
    return _window_reduce(x0, window, np.add)


def rolling_sum_count(x: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(sum of finite values, number of finite values) over each trailing window."""
    finite = np.isfinite(x)
    return _window_reduce(np.where(finite, x, 0.0), window, np.add), rolling_count(finite, window)


def rolling_sum(x: np.ndarray, window: int, min_periods: int | None = None) -> np.ndarray:
    """Σ of finite values over ``[t − window + 1, t]``; NaN if fewer than ``min_periods`` (default window)."""
    total, count = rolling_sum_count(x, window)
    need = window if min_periods is None else min_periods
    return np.where(count >= need, total, np.nan)


def rolling_mean(x: np.ndarray, window: int, min_periods: int | None = None) -> np.ndarray:
    """Mean of finite values over the trailing window (NaN below ``min_periods``, default window)."""
    total, count = rolling_sum_count(x, window)
    need = window if min_periods is None else max(min_periods, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count >= need, total / count, np.nan)


def rolling_std(
    x: np.ndarray, window: int, min_periods: int | None = None, ddof: int = 1
) -> np.ndarray:
    """Sample std over the trailing window: sqrt((Σx² − (Σx)²/n) / (n − ddof))."""
    finite = np.isfinite(x)
    x0 = np.where(finite, x, 0.0)
    s1 = _window_reduce(x0, window, np.add)
    s2 = _window_reduce(np.multiply(x0, x0, out=x0), window, np.add)
    n = rolling_count(finite, window)
    need = window if min_periods is None else max(min_periods, ddof + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (s2 - s1 * s1 / n) / (n - ddof)
    return np.where(n >= need, np.sqrt(np.maximum(var, 0.0)), np.nan)


def rolling_max(x: np.ndarray, window: int, min_periods: int | None = None) -> np.ndarray:
    """Max of finite values over the trailing window (exact; NaN below ``min_periods``)."""
    finite = np.isfinite(x)
    best = _window_reduce(np.where(finite, x, -np.inf), window, np.maximum)
    count = rolling_count(finite, window)
    need = window if min_periods is None else max(min_periods, 1)
    return np.where(count >= need, best, np.nan)


def safe_div(num: np.ndarray, den: np.ndarray, positive_den: bool = False) -> np.ndarray:
    """num / den with NaN where den is 0, non-finite, or (optionally) not > 0."""
    bad = ~np.isfinite(den) | (den == 0)
    if positive_den:
        bad |= den <= 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(bad, np.nan, num / np.where(bad, 1.0, den))


def safe_log(x: np.ndarray) -> np.ndarray:
    """log(x) for x > 0, NaN otherwise."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(x > 0, np.log(np.where(x > 0, x, 1.0)), np.nan)


def cap_weighted_market_return(
    ret: np.ndarray, market_cap: np.ndarray, universe: np.ndarray
) -> np.ndarray:
    """m[t] = Σ_i cap[t−1, i]·r[t, i] / Σ_i cap[t−1, i] over names in the universe at t−1.

    Weights use yesterday's cap (known before today's return). Shape (T,);
    row 0 is NaN (no prior weights). Each row is summed independently, so the
    value is the same whatever window of rows is passed.
    """
    w = shift(np.where(universe & (market_cap > 0), market_cap, np.nan), 1)
    ok = np.isfinite(w) & np.isfinite(ret)
    num = np.where(ok, w * np.where(ok, ret, 0.0), 0.0).sum(axis=1)
    den = np.where(ok, w, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def group_median(x: np.ndarray, codes: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per row, the median of ``x`` over the valid finite cells sharing each cell's code.

    ``codes`` are small non-negative ints (−1 = no group). Returns (T, N): the
    median of the cell's (row, code) group, NaN where the cell has no code or
    its group has no valid finite value. Fully vectorized: one sort by value,
    one stable sort by code, then order statistics via ``bincount``.
    """
    T, N = x.shape
    has_code = codes >= 0
    n_groups = int(codes.max()) + 2 if codes.size else 1
    c = np.where(has_code, codes, n_groups - 1).astype(np.int16)
    xm = np.where(valid & has_code & np.isfinite(x), x, np.nan)
    by_value = np.argsort(xm, axis=1, kind="stable")  # NaN last
    by_code = np.argsort(np.take_along_axis(c, by_value, axis=1), axis=1, kind="stable")
    perm = np.take_along_axis(by_value, by_code, axis=1)
    xs = np.take_along_axis(xm, perm, axis=1).ravel()
    gid_sorted = (np.arange(T)[:, None] * n_groups + np.take_along_axis(c, perm, axis=1)).ravel()
    sizes = np.bincount(gid_sorted, minlength=T * n_groups)
    starts = np.cumsum(sizes) - sizes
    n_fin = np.bincount(gid_sorted, weights=np.isfinite(xs), minlength=T * n_groups).astype(
        np.int64
    )
    last = max(xs.size - 1, 0)
    lo = np.minimum(starts + np.maximum(n_fin - 1, 0) // 2, last)
    hi = np.minimum(starts + n_fin // 2, last)
    med = np.where(n_fin > 0, 0.5 * (xs[lo] + xs[hi]) if xs.size else np.nan, np.nan)
    med[n_groups - 1 :: n_groups] = np.nan  # the "no code" pseudo-group
    out = med[(np.arange(T)[:, None] * n_groups + c).ravel()].reshape(T, N)
    return out
