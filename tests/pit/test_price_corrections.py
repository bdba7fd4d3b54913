"""A +5 % bad close corrected two sessions later reaches research history — from then on.

One simulated lake where security X's close on D is first printed 5 % too high and the true
close is published on D + 2 (before that session's cutoff). The research history
(:mod:`pipelines.pit.history`) must give, for every session s, exactly what a read of the
lake as known at s's cutoff gives (the reference: ``build_panel(..., view=cutoff(s))`` and
the same feature/label functions, bit for bit): the bad print up to D + 1, the corrected
close from D + 2 on — returns, features and labels alike — and the live loop's snapshot
agrees.
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
from pipelines.pit.labels import make_label
from pipelines.pit.lake_panel import build_panel
from pipelines.pit.panel import Panel
from pipelines.pit.snapshot import load_snapshot
from pipelines.research import stages
from pipelines.research.stages import ResearchContext, session_features
from pipelines.testing.lakes import simulated_lake
from pipelines.testing.lookahead import frames_equal
from pipelines.timeline import decision_cutoff, trading_calendar

pytestmark = pytest.mark.unit

START, END = dt.date(2020, 1, 2), dt.date(2020, 9, 30)
PANEL_START = dt.date(2020, 4, 1)
D = dt.date(2020, 6, 15)
BAD = 1.05
FEATURES = ("reversal_5d", "volatility_21d", "max_ret_21d", "sentiment_5d")
CAL = trading_calendar()
D1, D2 = CAL.offset(D, 1), CAL.offset(D, 2)
D_MINUS, LATE = CAL.offset(D, -1), CAL.offset(D, 8)


def _plant(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    px = frames["prices"].copy()
    sec = _victim(px)
    at = (px["security_id"] == sec) & (px["valid_date"] == pd.Timestamp(D))
    good = px[at].copy()
    px.loc[at, "close"] = px.loc[at, "close"] * BAD
    # the vendor's correction: published with D + 2's folder (18:00, before its 20:00 cutoff)
    good["known_at"] = pd.Timestamp(decision_cutoff(D2)) - pd.Timedelta(hours=2)
    # more history being revised around it, so that several lake states follow one another:
    # the same cell corrected again at D + 6, another name's D − 1 close corrected at D + 4,
    # and the folder of D + 8 published an hour after its cutoff
    again = good.assign(
        close=good["close"] * 1.001,
        known_at=pd.Timestamp(decision_cutoff(CAL.offset(D, 6))) - pd.Timedelta(hours=2),
    )
    other = (px["security_id"] == _victim(px, 5)) & (px["valid_date"] == pd.Timestamp(D_MINUS))
    fixed = px[other].assign(
        close=px.loc[other, "close"] * 0.9,
        known_at=pd.Timestamp(decision_cutoff(CAL.offset(D, 4))) - pd.Timedelta(hours=2),
    )
    late = px["valid_date"] == pd.Timestamp(LATE)
    px.loc[late, "known_at"] = pd.Timestamp(decision_cutoff(LATE)) + pd.Timedelta(hours=1)
    frames["prices"] = pd.concat([px, good, again, fixed], ignore_index=True)
    return frames


def _victim(prices: pd.DataFrame, k: int = 3) -> str:
    on_d = prices[prices["valid_date"] == pd.Timestamp(D)]
    return str(sorted(on_d["security_id"].astype(str))[k])


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    root: Path = tmp_path_factory.mktemp("corrections")
    return simulated_lake(root / "lake", universe=40, start=START, end=END, perturb=_plant)


@pytest.fixture(scope="module")
def history(lake: Lake) -> PanelHistory:
    return load_history(lake, PANEL_START, END)


@pytest.fixture(scope="module")
def victim(history: PanelHistory) -> str:
    close = history.panel.field("close").loc[pd.Timestamp(D)]
    return str(close.dropna().index[3])


def _view(lake: Lake, s: dt.date, lookback: int) -> Panel:
    """The reference: the window of session s read from the lake as known at its cutoff."""
    return build_panel(lake, CAL.back(s, lookback + 1)[0], s, view=decision_cutoff(s))


def _sessions() -> list[dt.date]:
    return CAL.sessions(CAL.offset(D, -3), CAL.offset(D, 14))


def test_returns_use_the_correction_once_it_is_known(
    lake: Lake, history: PanelHistory, victim: str
) -> None:
    at_d1 = _view(lake, D1, 1)
    at_d2 = _view(lake, D2, 2)
    close_bad = at_d1.field("close").loc[pd.Timestamp(D), victim]
    close_good = at_d2.field("close").loc[pd.Timestamp(D), victim]
    assert close_bad == pytest.approx(close_good * BAD)
    ret_then = at_d1.field("ret").loc[pd.Timestamp(D1), victim]
    ret_now = at_d2.field("ret").loc[pd.Timestamp(D1), victim]
    # point in time: at D + 1 the bad print is all there is; from D + 2 on the true return
    assert ret_then < -0.04 and abs(ret_now - ret_then) > 0.04
    sessions = history.session_panel().field("ret")
    assert sessions.loc[pd.Timestamp(D1), victim] == ret_then
    # the first-print panel keeps the bad close for ever (the defect)
    assert history.panel.field("close").loc[pd.Timestamp(D), victim] == close_bad
    # the live loop's snapshot of D + 3 sees the corrected return of D + 1 too
    snap = load_snapshot(lake, CAL.offset(D, 3), lookback=10)
    assert snap.returns.loc[pd.Timestamp(D1), victim] == pytest.approx(ret_now, rel=1e-9)
    view_d3 = history.view(history.panel.position(pd.Timestamp(CAL.offset(D, 3))), 5)
    assert view_d3.field("ret").loc[pd.Timestamp(D1), victim] == ret_now


def test_session_panel_equals_a_read_as_of_each_cutoff(lake: Lake, history: PanelHistory) -> None:
    sessions = history.session_panel()
    affected = {history.panel.dates[r].date() for r in history.affected(0)}
    assert D2 in affected and D1 not in affected and D not in affected
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
    moved = 0
    for s in _sessions():
        ref = _view(lake, s, lookback)
        for name, spec in specs.items():
            want = compute_feature(spec, ref, dates=[pd.Timestamp(s)]).iloc[0]
            got = frames[name].loc[pd.Timestamp(s)].reindex(want.index)
            assert np.array_equal(want.to_numpy(), got.to_numpy(), equal_nan=True), (s, name)
            first = compute_feature(spec, history.panel).loc[pd.Timestamp(s)]
            moved += not np.array_equal(
                first.reindex(want.index).to_numpy(), want.to_numpy(), equal_nan=True
            )
    assert moved > 0  # the correction does change features of later sessions


def test_labels_are_computed_when_they_become_known(lake: Lake, history: PanelHistory) -> None:
    for h, kind in ((1, "raw"), (2, "raw"), (5, "market"), (5, "sector")):
        label = history.label(h, kind).values  # type: ignore[arg-type]
        for t in CAL.sessions(CAL.offset(D, -h - 2), CAL.offset(D, 3)):
            s = CAL.offset(t, h)
            want = make_label(_view(lake, s, h), h, kind).values.loc[pd.Timestamp(t)]  # type: ignore[arg-type]
            got = label.loc[pd.Timestamp(t)].reindex(want.index)
            assert np.array_equal(want.to_numpy(), got.to_numpy(), equal_nan=True), (h, kind, t)
    raw1 = history.label(1, "raw").values
    raw2 = history.label(2, "raw").values
    first2 = make_label(history.panel, 2, "raw").values
    # D's 1-day label is known at D + 1 (bad print); its 2-day label at D + 2 (corrected)
    assert frames_equal(
        raw1.loc[[pd.Timestamp(D)]],
        make_label(history.panel, 1, "raw").values.loc[[pd.Timestamp(D)]],
    )
    assert not frames_equal(raw2.loc[[pd.Timestamp(D)]], first2.loc[[pd.Timestamp(D)]])


def test_research_stages_of_a_session_read_as_of_its_cutoff(
    lake: Lake, history: PanelHistory
) -> None:
    """compute_features of session s (what the daily DAG writes) = the history's row s."""
    specs = {n: registry()[n] for n in FEATURES}
    frames = session_features(history, specs)
    for s in (D1, CAL.offset(D, 3)):
        ctx = ResearchContext(lake, s).with_features(FEATURES)
        long = stages.compute_features(ctx)
        for name in FEATURES:
            mine = long[long["feature"] == name].set_index("security_id")["value"]
            assert len(mine) > 10
            expect = frames[name].loc[pd.Timestamp(s)].reindex(mine.index)
            assert np.array_equal(mine.to_numpy(), expect.to_numpy()), (s, name)
