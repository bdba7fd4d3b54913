"""The :class:`Model` protocol every alpha model implements, and :class:`ModelSpec`.

Qlib's shape: a model is ``fit(dataset)`` on the dataset's ``train`` segment (early
stopping, if any, on ``valid``) and ``predict(dataset, segment)`` scores a segment. On
top of that the walk-forward, the lake registry and the research stages need:

* :attr:`Model.spec` — the model's name in :data:`models.factory.MODELS` and every
  parameter that determines it (what the registry records and rebuilds from);
* :meth:`Model.to_artifact` / ``from_artifact`` — the fitted model as text (the
  registry's artifact, hashed into the model id) and back;
* :meth:`Model.predict_matrix` — raw scores of feature rows (daily scoring);
* :meth:`Model.feature_importance` and :meth:`Model.contributions` — the diagnostics.

A research configuration names a model by its registered name (``"lgbm"``) with a
parameter mapping, never by an import path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from pipelines.errors import AlphaFactoryError
from pipelines.pit.dataset import ResearchDataset

ImportanceType = Literal["gain", "split"]


class ModelError(AlphaFactoryError, ValueError):
    """A model cannot be fit, used or found as asked (empty training data, not fitted, …)."""


@dataclass(frozen=True)
class ModelSpec:
    """A registered model name and the parameters that determine the model."""

    name: str = "lgbm"
    params: Mapping[str, Any] = field(default_factory=dict)


class Model(Protocol):
    """A cross-sectional alpha model over a :class:`~pipelines.pit.dataset.ResearchDataset`."""

    @property
    def spec(self) -> ModelSpec:
        """Name and full parameters (defaults resolved): enough to re-fit the same model."""
        ...

    def fit(self, dataset: ResearchDataset) -> Model:
        """Fit on the ``train`` segment (``valid``, when present, for early stopping)."""
        ...

    def fit_metrics(self) -> dict[str, float]:
        """Facts of the last fit recorded with the model (e.g. where early stopping ended)."""
        ...

    def predict(self, dataset: ResearchDataset, segment: str = "test") -> pd.DataFrame:
        """Scores of the segment, wide (segment dates x securities; NaN off-universe)."""
        ...

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        """Raw scores of feature rows ``X`` (n, F)."""
        ...

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per-feature contributions to each row's score, (n, F)."""
        ...

    def feature_importance(self, importance_type: ImportanceType = "gain") -> np.ndarray:
        """Per-feature importance, (F,)."""
        ...

    def to_artifact(self) -> str:
        """The fitted model as text (canonical: equal models give equal text)."""
        ...
