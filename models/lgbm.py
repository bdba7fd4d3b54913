"""Deterministic LightGBM regressor with the Qlib ``fit(dataset)`` / ``predict(dataset)`` shape.

Determinism: a fixed ``seed`` (LightGBM derives bagging / feature-fraction /
data-sampling seeds from it), ``deterministic=True``, a fixed ``num_threads``
and ``force_col_wise=True`` (no timing-based row/col-wise auto choice). The
same rows + params + seed therefore give the same ``model_to_string()``.

Speed: the training ``lgb.Dataset`` is built once per fit (binning with
``max_bin`` bins); the validation set reuses its bin mappers (``reference``);
row subsampling (bagging) and feature subsampling cut each iteration's cost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from pipelines.pit.dataset import ResearchDataset

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "regression",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 200,
    "max_bin": 63,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.5,
    "bagging_freq": 1,
    "lambda_l2": 10.0,
    "verbosity": -1,
    "deterministic": True,
    "force_col_wise": True,
    "num_threads": 2,
    "seed": 7,
}


@dataclass
class LGBModel:
    """A LightGBM booster trained on a dataset's ``train`` segment.

    ``params`` override :data:`DEFAULT_PARAMS`; ``num_boost_round`` is the cap
    and ``early_stopping_rounds`` stops on the ``valid`` segment's l2.
    """

    params: dict[str, Any] = field(default_factory=dict)
    num_boost_round: int = 300
    early_stopping_rounds: int = 30
    booster: lgb.Booster | None = None
    best_iteration: int = 0

    @property
    def full_params(self) -> dict[str, Any]:
        return {**DEFAULT_PARAMS, **self.params}

    def fit(self, dataset: ResearchDataset) -> LGBModel:
        """Train on ``train`` rows; early-stop on ``valid`` rows (time-ordered holdout)."""
        params = self.full_params
        X, y, _ = dataset.matrix("train", labelled=True)
        if len(y) == 0:
            raise ValueError("empty training segment")
        train = lgb.Dataset(
            X, y, params=params, feature_name=list(dataset.feature_names), free_raw_data=True
        )
        valid_sets: list[lgb.Dataset] = []
        callbacks: list[Callable[..., Any]] = []
        if "valid" in dataset.segments:
            Xv, yv, _ = dataset.matrix("valid", labelled=True)
            if len(yv):
                valid_sets.append(lgb.Dataset(Xv, yv, reference=train, params=params))
                callbacks.append(
                    lgb.early_stopping(
                        self.early_stopping_rounds, first_metric_only=True, verbose=False
                    )
                )
        self.booster = lgb.train(
            params,
            train,
            num_boost_round=self.num_boost_round,
            valid_sets=valid_sets,
            valid_names=["valid"] * len(valid_sets),
            callbacks=callbacks,
        )
        self.best_iteration = int(self.booster.best_iteration or self.booster.current_iteration())
        return self

    def _require_booster(self) -> lgb.Booster:
        if self.booster is None:
            raise RuntimeError("model is not fitted")
        return self.booster

    def predict_matrix(self, X: np.ndarray, pred_contrib: bool = False) -> np.ndarray:
        """Raw predictions (or SHAP-style contributions, shape (n, F + 1)) for feature rows."""
        booster = self._require_booster()
        out = booster.predict(
            X,
            num_iteration=self.best_iteration,
            pred_contrib=pred_contrib,
            num_threads=self.full_params["num_threads"],
        )
        return np.asarray(out, dtype=np.float64)

    def predict(self, dataset: ResearchDataset, segment: str = "test") -> pd.DataFrame:
        """Scores for the segment as a wide DataFrame (segment dates x securities; NaN off-universe)."""
        start, stop = dataset.segments[segment]
        X, _, idx = dataset.matrix(segment, labelled=False)
        out = np.full((stop - start, len(dataset.securities)), np.nan)
        if len(X):
            out[idx[0] - start, idx[1]] = self.predict_matrix(X)
        return pd.DataFrame(out, index=dataset.dates[start:stop], columns=dataset.securities)

    def model_to_string(self) -> str:
        """The booster as text (the canonical, hashable model artifact)."""
        return str(self._require_booster().model_to_string(num_iteration=self.best_iteration))

    @classmethod
    def from_string(cls, text: str, params: dict[str, Any] | None = None) -> LGBModel:
        """Reload a booster saved with :meth:`model_to_string`."""
        booster = lgb.Booster(model_str=text)
        return cls(
            params=dict(params or {}), booster=booster, best_iteration=booster.current_iteration()
        )

    def feature_importance(self, importance_type: str = "gain") -> np.ndarray:
        """Per-feature importance (``gain`` or ``split``) over the used iterations."""
        booster = self._require_booster()
        return np.asarray(
            booster.feature_importance(
                importance_type=importance_type, iteration=self.best_iteration
            ),
            dtype=np.float64,
        )
