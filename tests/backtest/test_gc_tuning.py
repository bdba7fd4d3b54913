"""The backtest's garbage-collection setting is scoped: raised inside, restored after."""

from __future__ import annotations

import gc

import pytest

from pipelines.backtest.gc_tuning import fewer_collections

pytestmark = pytest.mark.unit


def test_thresholds_are_raised_inside_and_restored_after_even_on_error() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        with pytest.raises(RuntimeError), fewer_collections(50_000):
            assert gc.get_threshold() == (50_000, 10, 10)
            raise RuntimeError("boom")
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*before)


def test_a_higher_setting_is_kept() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(100_000, 5, 5)
        with fewer_collections(50_000):
            assert gc.get_threshold() == (100_000, 5, 5)
    finally:
        gc.set_threshold(*before)
