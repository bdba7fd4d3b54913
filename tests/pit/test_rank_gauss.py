"""rank_gauss's own average ranks equal scipy's ``rankdata(method="average")``, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import ndtri
from scipy.stats import rankdata

from pipelines.pit.normalize import average_ranks, rank_gauss

pytestmark = pytest.mark.unit


def _scipy_rank_gauss(x: np.ndarray, universe: np.ndarray) -> np.ndarray:
    xm = np.where(universe & np.isfinite(x), x, np.nan)
    ranks = rankdata(xm, axis=1, nan_policy="omit")
    n = np.isfinite(xm).sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.isfinite(xm), ndtri((ranks - 0.5) / n), np.nan)


def test_rank_gauss_matches_scipy_ranks_with_ties_nan_and_signed_zeros() -> None:
    rng = np.random.default_rng(3)
    for _ in range(300):
        t, n = int(rng.integers(0, 6)), int(rng.integers(0, 12))
        x = rng.integers(-3, 4, size=(t, n)).astype(float)
        x[rng.random((t, n)) < 0.2] = np.nan
        x[rng.random((t, n)) < 0.1] = np.inf
        x[rng.random((t, n)) < 0.1] = -0.0
        universe = rng.random((t, n)) < 0.8
        want, got = _scipy_rank_gauss(x, universe), rank_gauss(x, universe)
        assert got.shape == want.shape
        assert np.array_equal(np.isnan(got), np.isnan(want))
        ok = ~np.isnan(want)
        assert np.array_equal(got[ok].view(np.int64), want[ok].view(np.int64))


def test_average_ranks_of_finite_cells() -> None:
    x = np.array([[3.0, 1.0, np.nan, 1.0, 2.0], [np.nan, np.nan, 5.0, 5.0, 5.0]])
    ranks = average_ranks(x)
    assert ranks[0, [0, 1, 3, 4]].tolist() == [4.0, 1.5, 1.5, 3.0]
    assert ranks[1, 2:].tolist() == [2.0, 2.0, 2.0]
