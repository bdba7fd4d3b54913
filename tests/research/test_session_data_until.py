"""A research history read through a later session, cut at session ``s``
(:meth:`SessionData.until`), is the history read through ``s`` bit for bit — the identity
the backtest's retrains rely on to fit and score from one read (:func:`fit_and_score`).

The lake is the price-corrections one of ``tests/pit/test_price_corrections.py``: a bad
close corrected twice, another close corrected, and a late folder, all around the cut.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.features.registry import registry
from pipelines.lake import Lake
from pipelines.pit.history import load_history
from pipelines.research.stages import SessionData, session_data
from pipelines.testing.lakes import simulated_lake
from pipelines.timeline import decision_cutoff
from tests.pit.test_price_corrections import CAL, END, LATE, PANEL_START, START, D, _plant

pytestmark = pytest.mark.unit

FEATURES = ("reversal_5d", "volatility_21d", "sentiment_5d", "momentum_12_1_sector_rel")


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    root: Path = tmp_path_factory.mktemp("until")
    return simulated_lake(root / "lake", universe=40, start=START, end=END, perturb=_plant)


def _same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    if not (a.index.equals(b.index) and a.columns.equals(b.columns)):
        return False
    x, y = a.to_numpy(), b.to_numpy()
    if x.dtype == object or y.dtype == object:
        return bool((pd.isna(x) == pd.isna(y)).all() and (x[~pd.isna(x)] == y[~pd.isna(y)]).all())
    return bool(np.array_equal(x, y, equal_nan=True))


@pytest.mark.parametrize("cut", [CAL.offset(D, 3), CAL.offset(LATE, -1)])
def test_a_longer_history_cut_at_a_session_is_the_history_read_through_it(
    lake: Lake, cut: dt.date
) -> None:
    specs = {n: registry()[n] for n in FEATURES}
    longer = load_history(lake, PANEL_START, CAL.offset(LATE, 4))
    row = longer.panel.position(pd.Timestamp(cut))
    got = session_data(longer, specs, 5, "market").until(row, longer.securities_through(row))
    want: SessionData = session_data(
        load_history(lake, PANEL_START, cut, known_at=decision_cutoff(cut)), specs, 5, "market"
    )
    assert got.panel.securities.equals(want.panel.securities)
    for name in want.panel.field_names:
        assert _same(got.panel.field(name), want.panel.field(name)), name
    for name in specs:
        assert _same(got.features[name], want.features[name]), name
    assert _same(got.label.values, want.label.values)
    assert got.label.available_date.equals(want.label.available_date)
    a, b = got.dataset(), want.dataset()
    assert a.digest(0, len(a.dates)) == b.digest(0, len(b.dates))
