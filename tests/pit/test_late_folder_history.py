"""A late folder's corporate actions and sentiment reach research history at the next
session — exactly as a read of the lake as known at each session's cutoff (issue 14:
"late CA/sentiment not replayed in research history").

One simulated lake where the whole folder of session L is published an hour after L's
cutoff: its prices, its sentiment, and a 2:1 split with ex-date L that the vendor announces
only in that folder. For every session s around L, the research history
(:mod:`pipelines.pit.history`) must equal ``build_panel(..., view=cutoff(s))`` bit for bit,
fields and features alike.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.features.registry import compute_feature, registry
from pipelines.lake import Lake
from pipelines.pit.history import PanelHistory, load_history
from pipelines.pit.lake_panel import build_panel
from pipelines.pit.panel import Panel
from pipelines.research.stages import session_features
from pipelines.testing.lakes import simulated_lake
from pipelines.timeline import decision_cutoff, trading_calendar

pytestmark = pytest.mark.unit

START, END = dt.date(2020, 1, 2), dt.date(2020, 9, 30)
PANEL_START = dt.date(2020, 4, 1)
L = dt.date(2020, 6, 15)
FEATURES = ("reversal_5d", "volatility_21d", "sentiment_5d")
CAL = trading_calendar()


def _late() -> pd.Timestamp:
    return pd.Timestamp(decision_cutoff(L)) + pd.Timedelta(hours=1)


def _plant(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    px = frames["prices"].copy()
    on_l = px[px["valid_date"] == pd.Timestamp(L)]
    sec = str(sorted(on_l["security_id"].astype(str))[4])
    after = (px["security_id"] == sec) & (px["valid_date"] >= pd.Timestamp(L))
    for col in ("open", "high", "low", "close"):
        px.loc[after, col] = px.loc[after, col] / 2.0
    px.loc[after, "volume"] = px.loc[after, "volume"] * 2.0
    px.loc[px["valid_date"] == pd.Timestamp(L), "known_at"] = _late()
    frames["prices"] = px
    ca = frames["corporate_actions"]
    split = {c: None for c in ca.columns}
    split.update(
        security_id=sec, action_type="split", action_id="LATE-SPLIT", ratio=2.0,
        amount=np.nan, currency="USD", announce_date=pd.Timestamp(L),
        valid_date=pd.Timestamp(L), known_at=_late(),
    )  # fmt: skip
    frames["corporate_actions"] = pd.concat([ca, pd.DataFrame([split])], ignore_index=True)
    if "sentiment" in frames:
        se = frames["sentiment"].copy()
        se.loc[se["valid_date"] == pd.Timestamp(L), "known_at"] = _late()
        frames["sentiment"] = se
    return frames


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    root: Path = tmp_path_factory.mktemp("late-folder")
    return simulated_lake(root / "lake", universe=30, start=START, end=END, perturb=_plant)


@pytest.fixture(scope="module")
def history(lake: Lake) -> PanelHistory:
    return load_history(lake, PANEL_START, END)


def _view(lake: Lake, s: dt.date, lookback: int) -> Panel:
    return build_panel(lake, CAL.back(s, lookback + 1)[0], s, view=decision_cutoff(s))


def _sessions() -> list[dt.date]:
    return CAL.sessions(CAL.offset(L, -2), CAL.offset(L, 8))


def test_session_panel_equals_a_read_as_of_each_cutoff(lake: Lake, history: PanelHistory) -> None:
    sessions = history.session_panel()
    for s in _sessions():
        ref = _view(lake, s, 0)
        for name in ref.field_names:
            want = ref.field(name).iloc[-1]
            got = sessions.field(name).loc[pd.Timestamp(s)].reindex(want.index)
            if name == "sector":
                assert want.equals(got), (s, name)
            else:
                assert np.array_equal(
                    want.to_numpy(dtype=float), got.to_numpy(dtype=float), equal_nan=True
                ), (s, name)


def test_features_equal_a_per_session_recomputation(lake: Lake, history: PanelHistory) -> None:
    specs = {n: registry()[n] for n in FEATURES}
    lookback = max(s.lookback for s in specs.values())
    frames = session_features(history, specs)
    for s in _sessions():
        ref = _view(lake, s, lookback)
        for name, spec in specs.items():
            want = compute_feature(spec, ref, dates=[pd.Timestamp(s)]).iloc[0]
            got = frames[name].loc[pd.Timestamp(s)].reindex(want.index)
            assert np.array_equal(want.to_numpy(), got.to_numpy(), equal_nan=True), (s, name)


def test_the_split_return_is_not_a_crash_once_known(lake: Lake) -> None:
    """From L + 1 on, L's return of the split name is a normal day's, not −50 %."""
    view = _view(lake, CAL.offset(L, 1), 2)
    ret = view.field("ret").loc[pd.Timestamp(L)]
    assert ret.notna().sum() > 10 and float(ret.abs().max()) < 0.3
