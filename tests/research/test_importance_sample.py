"""The retrain's importance sample: bounded, deterministic, first and last row kept."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.research.diagnostics import IMPORTANCE_SAMPLE, even_sample

pytestmark = pytest.mark.unit


def test_even_sample_is_bounded_deterministic_and_ordered() -> None:
    X = np.arange(31_000 * 3, dtype=float).reshape(31_000, 3)
    a = even_sample(X, IMPORTANCE_SAMPLE)
    assert a.shape == (IMPORTANCE_SAMPLE, 3)
    assert np.array_equal(a, even_sample(X.copy(), IMPORTANCE_SAMPLE))
    assert a[0, 0] == X[0, 0] and a[-1, 0] == X[-1, 0]
    assert np.all(np.diff(a[:, 0]) > 0)  # distinct rows, in their order


def test_small_matrices_are_used_whole() -> None:
    X = np.ones((10, 2))
    assert even_sample(X, 100) is X
