"""The model id is the training data as known at the training cutoff, not the lake's state.

An identical model trained on identical data keeps its id when unrelated data lands later
(a correction published after the cutoff, news of later days): the tables' Delta versions
move, the id does not. A change of what the model trained on (a correction known before
the cutoff, of a day inside the training window) changes it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from pipelines.lake import Lake
from pipelines.research import stages
from pipelines.research.stages import ResearchContext
from pipelines.testing.lakes import simulated_lake
from pipelines.timeline import decision_cutoff, trading_calendar
from tests.research.lake_helpers import SMALL_CONFIG

pytestmark = pytest.mark.unit

START, END = dt.date(2020, 1, 2), dt.date(2021, 6, 30)
D0 = dt.date(2021, 3, 3)
CONFIG = dataclasses.replace(
    SMALL_CONFIG, features=("reversal_5d", "volatility_21d", "sentiment_5d")
)
CAL = trading_calendar()


def _price_row(lake: Lake, day: dt.date, known_at: dt.datetime, factor: float) -> pd.DataFrame:
    """One security's price of ``day`` re-published at ``known_at`` with its close × factor."""
    rows = lake.as_of("prices", known_at=decision_cutoff(day), valid_at=day).to_pandas()
    row = rows.sort_values("security_id").iloc[[2]].copy()
    row["close"] = row["close"] * factor
    keep = [c for c in row.columns if not c.startswith("_") and c != "valid_year"]
    return row[keep].assign(known_at=pd.Timestamp(known_at))


def test_model_id_follows_the_training_data_not_the_lake_version(tmp_path: Path) -> None:
    lake = simulated_lake(tmp_path / "lake", universe=40, start=START, end=END)
    first = stages.retrain(ResearchContext(lake, D0, CONFIG)).record
    assert first.inputs_known_at == decision_cutoff(D0).isoformat()

    # unrelated later data: a correction of a training-window day published after the
    # cutoff, and a new price version of a later day
    in_window = CAL.offset(D0, -30)
    later = decision_cutoff(CAL.offset(D0, 10))
    before = lake.table("prices").version()  # type: ignore[union-attr]
    lake.write("prices", _price_row(lake, in_window, later, 1.07))
    lake.write("prices", _price_row(lake, CAL.offset(D0, 5), later, 0.97))
    assert lake.table("prices").version() != before  # type: ignore[union-attr]
    again = stages.retrain(ResearchContext(lake, D0, CONFIG)).record
    assert again.model_id == first.model_id
    assert again.inputs_hash == first.inputs_hash
    rebuilt = stages.rebuild_model(lake, first.model_id, CONFIG)
    assert rebuilt.to_artifact() == first.booster

    # a correction the model could know (published before the cutoff) changes its data
    known = decision_cutoff(CAL.offset(in_window, 2))
    lake.write("prices", _price_row(lake, in_window, known, 1.07))
    changed = stages.retrain(ResearchContext(lake, D0, CONFIG)).record
    assert changed.inputs_hash != first.inputs_hash
    assert changed.model_id != first.model_id
