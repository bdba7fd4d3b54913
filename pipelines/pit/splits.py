"""Walk-forward splits with purging, embargo and a time-ordered validation fold.

Positions are trading-day indices into the panel dates. For a test block
starting at ``s`` (the model is fit at the close of ``s`` and scores dates
``[s, s + retrain_every)``), with label horizon ``h`` and embargo ``e``:

* **purge**: a sample with label date t covers returns over (t, t + h]; it may
  be trained on only if that window ends before the block it is used for, so
  train/valid samples need ``t + h + e <= s`` — every label used is therefore
  known at s (``label_available_date <= s``) and no label window overlaps the
  test period.
* **embargo** ``e``: an extra gap of e days between the last label window used
  for fitting and the test start (guards against serially correlated features
  leaking across the boundary). In walk-forward training data always precede
  the test block, so de Prado's post-test embargo reduces to this gap.
* **validation**: the last ``valid_days`` allowed label dates, for early
  stopping; the training fold before it is purged the same way
  (``t + h + e <= valid_start``), so the validation fold is a genuine
  out-of-sample, time-ordered holdout.
* **window**: expanding (``train_days=None``) from position 0, or rolling over
  the last ``train_days`` label dates of the training fold.

The schedule depends only on positions, never on values, so splits for dates
``<= D`` do not change when later data change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class WalkForwardConfig:
    """Split schedule parameters (all in trading days)."""

    horizon: int = 5
    retrain_every: int = 5  # weekly
    train_days: int | None = None  # None = expanding window
    min_train_days: int = 252
    valid_days: int = 63
    embargo: int = 2
    first_test: int | None = None  # default: earliest s with min_train_days of training


@dataclass(frozen=True)
class Split:
    """Position ranges ``[start, stop)`` of one walk-forward step."""

    train: tuple[int, int]
    valid: tuple[int, int]
    test: tuple[int, int]

    @property
    def fit_position(self) -> int:
        """The model is fit at the close of this date (= first test date)."""
        return self.test[0]

    def positions(self, part: str) -> np.ndarray:
        start, stop = getattr(self, part)
        return np.arange(start, stop)

    def describe(self, dates: pd.DatetimeIndex) -> dict[str, pd.Timestamp]:
        """First/last dates of each part (inclusive)."""
        out: dict[str, pd.Timestamp] = {}
        for part in ("train", "valid", "test"):
            start, stop = getattr(self, part)
            out[f"{part}_start"] = dates[start]
            out[f"{part}_end"] = dates[stop - 1]
        return out


def walk_forward_splits(n_dates: int, config: WalkForwardConfig) -> list[Split]:
    """The splits for a panel of ``n_dates`` trading days (see module docstring)."""
    h, e = config.horizon, config.embargo
    gap = h + e  # label date t is usable for a fold starting at s iff t + gap <= s
    # s must leave room for: train (min_train_days), gap, valid (valid_days), gap
    earliest = config.min_train_days + gap + config.valid_days + gap
    first = earliest if config.first_test is None else max(config.first_test, earliest)
    splits: list[Split] = []
    for s in range(first, n_dates, config.retrain_every):
        valid_stop = s - gap + 1
        valid_start = valid_stop - config.valid_days
        train_stop = valid_start - gap + 1
        train_start = 0 if config.train_days is None else max(0, train_stop - config.train_days)
        splits.append(
            Split(
                train=(train_start, train_stop),
                valid=(valid_start, valid_stop),
                test=(s, min(s + config.retrain_every, n_dates)),
            )
        )
    return splits
