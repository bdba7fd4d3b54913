"""Deterministic LightGBM, rebuild-from-record, record round trip and content hash."""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np
import pytest

from models.base import ModelSpec
from models.lgbm import LGBModel
from models.record import ModelRecord
from models.walk_forward import fit_split, rebuild
from pipelines.features.registry import compute_features
from pipelines.pit.dataset import ResearchDataset, build_dataset
from pipelines.pit.labels import make_label
from pipelines.pit.splits import WalkForwardConfig, walk_forward_splits
from pipelines.testing.panels import synthetic_panel

pytestmark = pytest.mark.unit

FEATURES = ["sentiment_5d", "reversal_5d", "volatility_21d", "book_to_price"]


@lru_cache(maxsize=1)
def dataset() -> ResearchDataset:
    p = synthetic_panel(n_securities=100, n_days=300, seed=5, signal_strength=0.1)
    return build_dataset(p, compute_features(FEATURES, p), make_label(p, 5, "market"))


def split():
    cfg = WalkForwardConfig(horizon=5, retrain_every=20, min_train_days=120, valid_days=30)
    return walk_forward_splits(len(dataset().dates), cfg)[0]


def test_training_is_deterministic_and_rebuild_is_bit_identical() -> None:
    ds = dataset()
    spec = ModelSpec("lgbm", {"num_leaves": 7, "num_boost_round": 60})
    m1, rec = fit_split(ds, split(), spec, known_at="2024-01-02T01:00:00+00:00")
    m2, rec2 = fit_split(ds, split(), spec, known_at="2024-01-02T01:00:00+00:00")
    assert m1.to_artifact() == m2.to_artifact() and rec.model_id == rec2.model_id
    rebuilt = rebuild(ModelRecord.from_json(rec.to_json()), ds)
    assert rebuilt.to_artifact() == rec.booster
    test = ds.with_segments(test=split().test)
    assert m1.predict(test).equals(rebuilt.predict(test))
    reloaded = LGBModel.from_artifact(rec.booster)
    assert reloaded.predict(test).equals(m1.predict(test))
    params = rec.params
    assert params["deterministic"] and params["force_col_wise"] and params["num_threads"] == 2


def test_record_roundtrip_and_content_hash() -> None:
    spec = ModelSpec("lgbm", {"num_leaves": 7, "num_boost_round": 20})
    _, rec = fit_split(dataset(), split(), spec, known_at="2024-01-02T01:00:00+00:00")
    again = ModelRecord.from_json(rec.to_json())
    assert again == rec
    # the id is the content of the training rows, not when or from which table version
    _, same = fit_split(dataset(), split(), spec, known_at="2025-01-02T01:00:00+00:00")
    assert same.model_id == rec.model_id
    changed = dataset().X.copy()
    t, i = np.argwhere(np.isfinite(changed[split().train[0] :, :, 0]))[0]
    changed[split().train[0] + t, i, 0] += 1.0
    other_data = dataclasses.replace(dataset(), X=changed)
    _, other = fit_split(other_data, split(), spec, known_at=rec.inputs_known_at)
    assert other.model_id != rec.model_id  # different training data → different model


def test_arrow_columns_train_the_model_a_2d_array_trains(monkeypatch: pytest.MonkeyPatch) -> None:
    """The training and validation sets go to LightGBM as Arrow columns (faster binning);
    the model is the one the 2-D array gives, bit for bit, NaNs included."""
    import models.lgbm as lgbm

    ds = dataset()
    train = ds.with_segments(train=split().train).matrix("train", labelled=True)[0]
    assert np.isnan(train).any()  # missing values are binned too
    spec = ModelSpec("lgbm", {"num_leaves": 7, "num_boost_round": 40, "num_threads": 1})
    arrow, _ = fit_split(ds, split(), spec, known_at="2024-01-02T01:00:00+00:00")
    monkeypatch.setattr(lgbm, "_columns", lambda X, names: X)
    array, _ = fit_split(ds, split(), spec, known_at="2024-01-02T01:00:00+00:00")
    assert arrow.to_artifact() == array.to_artifact()
