"""Walk-forward training: one model per split, out-of-sample scores per date.

For each :class:`~pipelines.pit.splits.Split` a fresh model of the given
:class:`~models.base.ModelSpec` (any :class:`~models.base.Model`) is fit on the split's train segment (early stopping on its valid segment) and
scores the split's test dates. Every score row carries the ``model_id`` of the
model that produced it. Because splits only use labels known at the fit date
and features are point-in-time, scores for dates ``<= D`` depend on panel rows
``<= D`` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models.base import Model, ModelError, ModelSpec
from models.factory import create_model
from models.record import ModelRecord
from pipelines.pit.dataset import ResearchDataset
from pipelines.pit.splits import Split


@dataclass
class WalkForwardResult:
    """``scores``: long DataFrame [date, security_id, score, model_id]; one record per split."""

    scores: pd.DataFrame
    records: list[ModelRecord]
    models: dict[str, Model] = field(default_factory=dict, repr=False)

    def scores_wide(self) -> pd.DataFrame:
        """Scores as dates x securities."""
        return self.scores.pivot(index="date", columns="security_id", values="score")


def _fmt(ts: pd.Timestamp) -> str:
    return pd.Timestamp(ts).date().isoformat()


def fit_split(
    dataset: ResearchDataset,
    split: Split,
    spec: ModelSpec,
    known_at: str | None = None,
) -> tuple[Model, ModelRecord]:
    """Fit one model of ``spec`` on a split and describe it as a :class:`ModelRecord`.

    The record's id covers the content of the rows fit on (train and valid segments), so
    two fits on identical data get one id; ``known_at`` records when those rows were read.
    """
    ds = dataset.with_segments(train=split.train, valid=split.valid, test=split.test)
    model = create_model(spec).fit(ds)
    when = split.describe(dataset.dates)
    fitted = model.spec
    record = ModelRecord.create(
        model=fitted.name,
        booster=model.to_artifact(),
        params=dict(fitted.params),
        features=dataset.feature_names,
        label=dataset.label_name,
        train_start=_fmt(when["train_start"]),
        train_end=_fmt(when["train_end"]),
        valid_start=_fmt(when["valid_start"]),
        valid_end=_fmt(when["valid_end"]),
        inputs_hash=dataset.digest(split.train[0], max(split.train[1], split.valid[1])),
        inputs_known_at=known_at,
        metrics=model.fit_metrics(),
    )
    return model, record


def rebuild(record: ModelRecord, dataset: ResearchDataset) -> Model:
    """Re-fit a model from its record on the same dataset: same rows, params and seed.

    With unchanged inputs the booster text (hence ``model_id``) is identical.
    """
    if tuple(record.features) != dataset.feature_names:
        raise ModelError("dataset features differ from the record's")
    dates = dataset.dates

    stamps = dates.values

    def span(start: str, end: str) -> tuple[int, int]:
        lo = np.searchsorted(stamps, np.datetime64(pd.Timestamp(start)), side="left")
        hi = np.searchsorted(stamps, np.datetime64(pd.Timestamp(end)), side="right")
        return int(lo), int(hi)

    segments = {"train": span(record.train_start, record.train_end)}
    if record.valid_start is not None and record.valid_end is not None:
        segments["valid"] = span(record.valid_start, record.valid_end)
    return create_model(record.spec).fit(dataset.with_segments(**segments))


def run_walk_forward(
    dataset: ResearchDataset,
    splits: Sequence[Split],
    spec: ModelSpec,
    known_at: str | None = None,
    keep_models: bool = False,
) -> WalkForwardResult:
    """Fit every split in order and collect its test-segment scores."""
    frames: list[pd.DataFrame] = []
    records: list[ModelRecord] = []
    models: dict[str, Model] = {}
    for split in splits:
        model, record = fit_split(dataset, split, spec, known_at)
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
