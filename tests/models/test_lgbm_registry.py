"""Deterministic LightGBM, rebuild-from-record, model store and champion logic."""

from __future__ import annotations

from functools import lru_cache

import pytest

from models.lgbm import LGBModel
from models.registry import (
    ChampionPolicy,
    LocalModelStore,
    ModelRecord,
    ModelStore,
    promote_if_better,
)
from models.walk_forward import fit_split, rebuild
from pipelines.research.dataset import ResearchDataset, build_dataset
from pipelines.research.labels import make_label
from pipelines.research.panel import make_synthetic_panel
from pipelines.research.splits import WalkForwardConfig, walk_forward_splits

pytestmark = pytest.mark.unit

FEATURES = ["sentiment_5d", "reversal_5d", "volatility_21d", "book_to_price"]


@lru_cache(maxsize=1)
def dataset() -> ResearchDataset:
    p = make_synthetic_panel(n_securities=100, n_days=300, seed=5, signal_strength=0.1)
    return build_dataset(p, FEATURES, make_label(p, 5, "market"))


def split():
    cfg = WalkForwardConfig(horizon=5, retrain_every=20, min_train_days=120, valid_days=30)
    return walk_forward_splits(len(dataset().dates), cfg)[0]


def test_training_is_deterministic_and_rebuild_is_bit_identical() -> None:
    ds = dataset()
    m1, rec = fit_split(
        ds, split(), {"num_leaves": 7}, num_boost_round=60, input_versions={"prices": 3}
    )
    m2, rec2 = fit_split(
        ds, split(), {"num_leaves": 7}, num_boost_round=60, input_versions={"prices": 3}
    )
    assert m1.model_to_string() == m2.model_to_string() and rec.model_id == rec2.model_id
    rebuilt = rebuild(ModelRecord.from_json(rec.to_json()), ds)
    assert rebuilt.model_to_string() == rec.booster
    test = ds.with_segments(test=split().test)
    assert m1.predict(test).equals(rebuilt.predict(test))
    reloaded = LGBModel.from_string(rec.booster)
    assert reloaded.predict(test).equals(m1.predict(test))
    params = rec.params
    assert params["deterministic"] and params["force_col_wise"] and params["num_threads"] == 2


def test_record_roundtrip_and_content_hash() -> None:
    _, rec = fit_split(
        dataset(), split(), {"num_leaves": 7}, num_boost_round=20, input_versions={"prices": 3}
    )
    again = ModelRecord.from_json(rec.to_json())
    assert again == rec
    _, other = fit_split(
        dataset(), split(), {"num_leaves": 7}, num_boost_round=20, input_versions={"prices": 4}
    )
    assert other.model_id != rec.model_id  # different input table version → different model


def _record(name: str, ic: float) -> ModelRecord:
    return ModelRecord.create(
        booster=f"tree-{name}",
        params={"seed": 1},
        features=["a"],
        label="y",
        train_start="2020-01-01",
        train_end="2020-12-31",
        metrics={"oos_rank_ic": ic},
    )


def test_store_and_champion_challenger(tmp_path) -> None:
    store = LocalModelStore(tmp_path)
    assert isinstance(store, ModelStore) and store.champion() is None
    policy = ChampionPolicy(margin=0.01)
    first = promote_if_better(store, _record("a", 0.03), policy)
    assert first.promoted and store.champion().model_id == first.challenger_id
    small = promote_if_better(store, _record("b", 0.035), policy)  # better, but within the margin
    assert not small.promoted and store.champion().model_id == first.challenger_id
    big = promote_if_better(store, _record("c", 0.05), policy)
    assert big.promoted and store.champion().model_id == big.challenger_id
    assert len(store.list()) == 3
    assert store.load(big.challenger_id).metrics["oos_rank_ic"] == 0.05
    with pytest.raises(KeyError):
        store.set_champion("nope")
