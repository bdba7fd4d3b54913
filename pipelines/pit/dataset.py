"""The model-ready dataset: a (T, N, F) feature cube, a (T, N) label and segments.

Qlib-style: a model is ``fit(dataset)`` on the ``train`` segment with early
stopping on ``valid``, then ``predict(dataset, "test")``. Segments are
position ranges ``[start, stop)`` over dates; a row (t, i) belongs to a segment
when t is in the range and security i is in the universe at t. Training rows
additionally need a finite label.

Features are normalized per date over the universe (rank-gauss by default) so
the model sees a stationary cross-sectional scale; the label is rank-gaussed
per date too (a cross-sectional model predicts *relative* returns).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

import numpy as np
import pandas as pd

from pipelines.pit.labels import LabelSet
from pipelines.pit.normalize import masked, rank_gauss, zscore
from pipelines.pit.panel import Panel

Normalization = Literal["rank_gauss", "zscore", "none"]


@dataclass(frozen=True, eq=False)
class ResearchDataset:
    """Aligned features/labels on ``dates`` x ``securities``."""

    dates: pd.DatetimeIndex
    securities: pd.Index
    feature_names: tuple[str, ...]
    X: np.ndarray  # (T, N, F) float32, NaN = missing
    y: np.ndarray  # (T, N) float64 training target, NaN = missing
    universe: np.ndarray  # (T, N) bool
    label_name: str
    horizon: int
    segments: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    def with_segments(self, **segments: tuple[int, int]) -> ResearchDataset:
        """A shallow copy (arrays shared) with the given segments."""
        return replace(self, segments=dict(segments))

    def rows(self, segment: str, labelled: bool) -> tuple[np.ndarray, np.ndarray]:
        """Flat (t, i) indices of the segment's rows (in universe; finite label if ``labelled``)."""
        start, stop = self.segments[segment]
        mask = self.universe[start:stop]
        if labelled:
            mask = mask & np.isfinite(self.y[start:stop])
        t_idx, i_idx = np.nonzero(mask)
        return t_idx + start, i_idx

    def digest(self, start: int, stop: int) -> str:
        """sha256 (first 16 hex) of rows ``[start, stop)``: dates, securities, features,
        label and universe — what a model fit on those rows saw, bit for bit."""
        h = hashlib.sha256()
        h.update(repr((self.feature_names, self.label_name, self.horizon)).encode())
        h.update(self.dates[start:stop].values.astype("datetime64[ns]").tobytes())
        h.update("\x1f".join(map(str, self.securities)).encode())
        for array in (self.X, self.y, self.universe):
            h.update(np.ascontiguousarray(array[start:stop]).tobytes())
        return h.hexdigest()[:16]

    def matrix(self, segment: str, labelled: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(X rows (n, F) float32, y (n,), (t, i) index pairs (2, n)) of a segment, time-ordered."""
        t_idx, i_idx = self.rows(segment, labelled)
        return self.X[t_idx, i_idx], self.y[t_idx, i_idx], np.vstack([t_idx, i_idx])


class NormalizedRows(Protocol):
    """Rows normalised before, reused where their input is equal
    (:class:`pipelines.research.carry.FitCarry`)."""

    def normalized(
        self,
        key: str,
        dates: pd.DatetimeIndex,
        securities: pd.Index,
        how: str,
        masked: np.ndarray,
        normalize: Callable[[np.ndarray], np.ndarray],
    ) -> np.ndarray:
        """``normalize(masked)``, row by row, with rows known from equal input reused."""
        ...


def _normalize_rows(
    values: np.ndarray,
    universe: np.ndarray,
    how: Normalization,
    key: str,
    axes: tuple[pd.DatetimeIndex, pd.Index],
    carry: NormalizedRows | None,
) -> np.ndarray:
    """:func:`_normalize`, through ``carry`` when given: rank-gauss and z-score map each
    row of the masked values (NaN outside the universe or non-finite) to its output on
    their own, so ``f(masked, isfinite(masked))`` is ``f(values, universe)`` bit for bit
    and a row with the same masked input has the same output."""
    if carry is None or how not in ("rank_gauss", "zscore"):
        return _normalize(values, universe, how)

    def normalize(rows: np.ndarray) -> np.ndarray:
        return _normalize(rows, np.isfinite(rows), how)

    return carry.normalized(key, *axes, how, masked(values, universe), normalize)


def _normalize(values: np.ndarray, universe: np.ndarray, how: Normalization) -> np.ndarray:
    if how == "rank_gauss":
        return rank_gauss(values, universe)
    if how == "zscore":
        return zscore(values, universe)
    return np.where(universe, values, np.nan)


def build_dataset(
    panel: Panel,
    features: Mapping[str, pd.DataFrame],
    label: LabelSet,
    normalization: Normalization = "rank_gauss",
    label_normalization: Normalization = "rank_gauss",
    carry: NormalizedRows | None = None,
) -> ResearchDataset:
    """Normalize the wide ``features`` (name → frame on the panel's axes) per date, align the label.

    The feature values come from the caller (e.g.
    :func:`pipelines.features.registry.compute_features`); this layer knows no feature code.

    Everything here is per-date (cross-sectional) or uses the features' own
    lookback, so rows ``<= D`` of the dataset depend only on panel rows ``<= D``
    — except the label, whose row t reads t + horizon (and is only used by the
    splits once available). With ``carry`` (a backtest worker's), rows normalised from
    the same input by its previous fit are reused (:func:`_normalize_rows`).
    """
    universe = panel.universe()
    axes = (panel.dates, panel.securities)
    names = tuple(features)
    T, N = panel.shape
    # one (T, N) plane per feature, then one transposing copy: writing each feature into
    # the (T, N, F) cube directly (a stride of F floats) cost twice the CPU; same values
    planes = np.empty((len(names), T, N), dtype=np.float32)
    for f, name in enumerate(names):
        frame = features[name]
        values = frame.to_numpy(dtype=np.float64)
        planes[f] = _normalize_rows(values, universe, normalization, f"x:{name}", axes, carry)
    X = np.ascontiguousarray(planes.transpose(1, 2, 0))
    del planes
    y = _normalize_rows(
        label.values.to_numpy(dtype=np.float64), universe, label_normalization, "y", axes, carry
    )
    return ResearchDataset(
        dates=panel.dates,
        securities=panel.securities,
        feature_names=names,
        X=X,
        y=y,
        universe=universe,
        label_name=label.name,
        horizon=label.horizon,
    )
