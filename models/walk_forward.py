"""Walk-forward training: one model per split, out-of-sample scores per date.

For each :class:`~pipelines.pit.splits.Split` a fresh :class:`LGBModel`
is fit on the split's train segment (early stopping on its valid segment) and
scores the split's test dates. Every score row carries the ``model_id`` of the
model that produced it. Because splits only use labels known at the fit date
and features are point-in-time, scores for dates ``<= D`` depend on panel rows
``<= D`` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models.lgbm import LGBModel
from models.registry import ModelRecord
from pipelines.pit.dataset import ResearchDataset
from pipelines.pit.splits import Split


@dataclass
class WalkForwardResult:
    """``scores``: long DataFrame [date, security_id, score, model_id]; one record per split."""

    scores: pd.DataFrame
    records: list[ModelRecord]
    models: dict[str, LGBModel] = field(default_factory=dict, repr=False)

    def scores_wide(self) -> pd.DataFrame:
        """Scores as dates x securities."""
        return self.scores.pivot(index="date", columns="security_id", values="score")


def _fmt(ts: pd.Timestamp) -> str:
    return pd.Timestamp(ts).date().isoformat()


def fit_split(
    dataset: ResearchDataset,
    split: Split,
    params: dict[str, Any] | None = None,
    num_boost_round: int = 300,
    early_stopping_rounds: int = 30,
    input_versions: dict[str, int] | None = None,
) -> tuple[LGBModel, ModelRecord]:
    """Fit one model on a split and describe it as a :class:`ModelRecord`."""
    ds = dataset.with_segments(train=split.train, valid=split.valid, test=split.test)
    model = LGBModel(
        params=dict(params or {}),
        num_boost_round=num_boost_round,
        early_stopping_rounds=early_stopping_rounds,
    ).fit(ds)
    when = split.describe(dataset.dates)
    record = ModelRecord.create(
        booster=model.model_to_string(),
        params={
            **model.full_params,
            "num_boost_round": num_boost_round,
            "early_stopping_rounds": early_stopping_rounds,
        },
        features=dataset.feature_names,
        label=dataset.label_name,
        train_start=_fmt(when["train_start"]),
        train_end=_fmt(when["train_end"]),
        valid_start=_fmt(when["valid_start"]),
        valid_end=_fmt(when["valid_end"]),
        input_versions=input_versions,
        metrics={"best_iteration": float(model.best_iteration)},
    )
    return model, record


def rebuild(record: ModelRecord, dataset: ResearchDataset) -> LGBModel:
    """Re-fit a model from its record on the same dataset: same rows, params and seed.

    With unchanged inputs the booster text (hence ``model_id``) is identical.
    """
    if tuple(record.features) != dataset.feature_names:
        raise ValueError("dataset features differ from the record's")
    params = dict(record.params)
    rounds = int(params.pop("num_boost_round"))
    stopping = int(params.pop("early_stopping_rounds"))
    dates = dataset.dates

    stamps = dates.values

    def span(start: str, end: str) -> tuple[int, int]:
        lo = np.searchsorted(stamps, np.datetime64(pd.Timestamp(start)), side="left")
        hi = np.searchsorted(stamps, np.datetime64(pd.Timestamp(end)), side="right")
        return int(lo), int(hi)

    segments = {"train": span(record.train_start, record.train_end)}
    if record.valid_start is not None and record.valid_end is not None:
        segments["valid"] = span(record.valid_start, record.valid_end)
    model = LGBModel(params=params, num_boost_round=rounds, early_stopping_rounds=stopping)
    return model.fit(dataset.with_segments(**segments))


def run_walk_forward(
    dataset: ResearchDataset,
    splits: Sequence[Split],
    params: dict[str, Any] | None = None,
    num_boost_round: int = 300,
    early_stopping_rounds: int = 30,
    input_versions: dict[str, int] | None = None,
    keep_models: bool = False,
) -> WalkForwardResult:
    """Fit every split in order and collect its test-segment scores."""
    frames: list[pd.DataFrame] = []
    records: list[ModelRecord] = []
    models: dict[str, LGBModel] = {}
    for split in splits:
        model, record = fit_split(
            dataset, split, params, num_boost_round, early_stopping_rounds, input_versions
        )
        ds = dataset.with_segments(test=split.test)
        X, _, idx = ds.matrix("test", labelled=False)
        if len(X):
            frames.append(
                pd.DataFrame(
                    {
                        "date": dataset.dates[idx[0]],
                        "security_id": dataset.securities[idx[1]].astype(object),
                        "score": model.predict_matrix(X),
                        "model_id": record.model_id,
                    }
                )
            )
        records.append(record)
        if keep_models:
            models[record.model_id] = model
    empty = pd.DataFrame(
        {
            "date": pd.Series(dtype="datetime64[ns]"),
            "security_id": pd.Series(dtype="object"),
            "score": pd.Series(dtype="float64"),
            "model_id": pd.Series(dtype="object"),
        }
    )
    scores = pd.concat(frames, ignore_index=True) if frames else empty
    return WalkForwardResult(scores=scores, records=records, models=models)
