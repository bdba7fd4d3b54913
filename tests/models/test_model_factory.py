"""Models are chosen by name: the factory, the spec round trip, the record's model name."""

from __future__ import annotations

import json

import pytest

from models.base import ModelSpec
from models.factory import MODELS, UnknownModelError, create_model
from models.lgbm import LGBModel
from models.record import ModelRecord
from pipelines.errors import AlphaFactoryError

pytestmark = pytest.mark.unit


def test_lgbm_is_registered_and_its_spec_round_trips() -> None:
    assert MODELS["lgbm"] is LGBModel
    model = create_model(ModelSpec("lgbm", {"num_leaves": 7, "num_boost_round": 20}))
    assert isinstance(model, LGBModel)
    assert model.num_boost_round == 20 and model.early_stopping_rounds == 30
    spec = model.spec
    assert spec.name == "lgbm" and spec.params["num_leaves"] == 7
    assert create_model(spec).spec == spec  # the full params rebuild the same model


def test_unknown_model_is_one_clear_error() -> None:
    with pytest.raises(UnknownModelError, match="registered: \\['lgbm'\\]") as info:
        create_model(ModelSpec("nope"))
    assert isinstance(info.value, AlphaFactoryError)


def test_record_names_its_model_and_old_records_read_as_lgbm() -> None:
    record = ModelRecord.create(
        booster="tree",
        params={"seed": 1},
        features=["a"],
        label="y",
        train_start="2020-01-01",
        train_end="2020-12-31",
    )
    assert record.spec == ModelSpec("lgbm", {"seed": 1})
    legacy = json.loads(record.to_json())
    del legacy["model"]
    assert ModelRecord.from_json(json.dumps(legacy)) == record
