"""Vectorized primitives vs straightforward pandas, and per-date normalization."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.pit import normalize, ops

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(300, 9))
    values[rng.random(values.shape) < 0.1] = np.nan
    return values


@pytest.mark.parametrize("window", [2, 5, 21, 63, 252])
def test_rolling_matches_pandas(x: np.ndarray, window: int) -> None:
    mp = max(2, window // 2)
    frame = pd.DataFrame(x).rolling(window, min_periods=mp)
    for ours, ref in [
        (ops.rolling_mean(x, window, mp), frame.mean()),
        (ops.rolling_std(x, window, mp), frame.std()),
        (ops.rolling_max(x, window, mp), frame.max()),
        (ops.rolling_sum(x, window, mp), frame.sum()),
    ]:
        expected = ref.to_numpy().copy()
        expected[: window - 1] = np.nan  # ours: no partial windows at the start
        np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-12)


def test_rolling_sum_is_window_invariant(x: np.ndarray) -> None:
    full = ops.rolling_sum(x, 63, min_periods=1)
    tail = ops.rolling_sum(x[137:], 63, min_periods=1)
    assert np.array_equal(full[137 + 62 :], tail[62:], equal_nan=True)


def test_group_median_matches_pandas(x: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    codes = rng.integers(-1, 4, size=x.shape).astype(np.int16)
    valid = rng.random(x.shape) < 0.8
    got = ops.group_median(x, codes, valid)
    df = pd.DataFrame(
        {
            "r": np.repeat(np.arange(x.shape[0]), x.shape[1]),
            "c": codes.ravel(),
            "x": np.where(valid & (codes >= 0), x, np.nan).ravel(),
        }
    )
    med = df[df.c >= 0].groupby(["r", "c"]).x.median()
    keys = pd.MultiIndex.from_arrays([df.r, df.c])
    expected = med.reindex(keys).to_numpy().reshape(x.shape)
    np.testing.assert_allclose(got, np.where(codes >= 0, expected, np.nan), equal_nan=True)


def test_normalizers_use_universe_only(x: np.ndarray) -> None:
    universe = np.ones(x.shape, dtype=bool)
    universe[:, 0] = False
    big = x.copy()
    big[:, 0] = 1e9  # outside the universe: must not influence anything
    z = normalize.zscore(big, universe)
    assert np.isnan(z[:, 0]).all()
    np.testing.assert_allclose(np.nanmean(z[:, 1:], axis=1), 0.0, atol=1e-12)
    g = normalize.rank_gauss(big, universe)
    assert np.isnan(g[:, 0]).all() and np.nanmax(np.abs(g)) < 4
    np.testing.assert_allclose(np.nanmean(g, axis=1), 0.0, atol=1e-12)
    w = normalize.winsorize_quantile(big, universe, 0.1, 0.9)
    lo, hi = np.nanquantile(np.where(universe, x, np.nan), [0.1, 0.9], axis=1)
    assert (np.nanmin(w, axis=1) >= lo - 1e-12).all() and (np.nanmax(w, axis=1) <= hi + 1e-12).all()
    m = normalize.winsorize_mad(big, universe, n_mad=1.0)
    assert np.isnan(m[:, 0]).all() and np.nanmax(np.abs(m)) < 5
