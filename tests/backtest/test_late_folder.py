"""A vendor folder published one hour after its session's cutoff is not a permanent hole.

Session L's prices land at cutoff(L) + 1 h. As decided at L's cutoff there is no close for
L: the backtest goes on (no new scores, targets or orders for L; the book at stale marks),
names the skipped session and why, and the research stages say why they wrote nothing. The
next session uses L's late close: its snapshot's returns start from it, and its research
history holds it.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.backtest import run_backtest
from pipelines.lake import Lake
from pipelines.pit.snapshot import load_snapshot
from pipelines.research import stages
from pipelines.research.stages import UNPRICED_SESSION_KIND, ResearchContext
from pipelines.testing.lakes import simulated_lake
from pipelines.timeline import decision_cutoff, trading_calendar
from tests.daily.helpers import BACKTEST_CONFIG as CONFIG
from tests.daily.helpers import END as MARKET_END
from tests.daily.helpers import START as MARKET_START

pytestmark = [pytest.mark.unit, pytest.mark.slow]
CAL = trading_calendar()
L = dt.date(2024, 5, 29)
NEXT = CAL.offset(L, 1)
RANGE = (dt.date(2024, 5, 24), dt.date(2024, 6, 4))


def _late(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    px = frames["prices"].copy()
    day = px["valid_date"] == pd.Timestamp(L)
    px.loc[day, "known_at"] = pd.Timestamp(decision_cutoff(L)) + pd.Timedelta(hours=1)
    frames["prices"] = px
    return frames


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    root: Path = tmp_path_factory.mktemp("late")
    return simulated_lake(
        root / "lake", universe=30, start=MARKET_START, end=MARKET_END, signal=0.3, seed=9
    )


@pytest.fixture(scope="module")
def late_lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    root: Path = tmp_path_factory.mktemp("late")
    return simulated_lake(
        root / "lake",
        universe=30,
        start=MARKET_START,
        end=MARKET_END,
        signal=0.3,
        seed=9,
        perturb=_late,
    )


def test_the_next_session_uses_the_late_close(lake: Lake, late_lake: Lake) -> None:
    at_l = load_snapshot(late_lake, L, lookback=10)
    assert pd.Timestamp(L) not in at_l.close.index and at_l.universe == []
    on_time, late = (
        load_snapshot(lake, NEXT, lookback=10),
        load_snapshot(late_lake, NEXT, lookback=10),
    )
    # the next session's returns are computed from L's (late) close: as if it had been on time
    pd.testing.assert_frame_equal(late.returns, on_time.returns, check_exact=True)
    assert np.isfinite(late.returns.loc[pd.Timestamp(NEXT)]).sum() >= 25


def test_research_stages_skip_the_unpriced_session_loudly_and_recover(
    late_lake: Lake, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        universe = stages.compute_universe(ResearchContext(late_lake, L))
    assert universe.empty
    assert f"no close for {L}" in caplog.text
    diag = late_lake.as_of(
        "research_diagnostics", known_at=decision_cutoff(L), valid_at=L
    ).to_pandas()
    assert (diag["kind"] == UNPRICED_SESSION_KIND).sum() == 1
    assert len(stages.compute_universe(ResearchContext(late_lake, NEXT))) >= 20
    features = stages.compute_features(
        ResearchContext(late_lake, NEXT).with_features(["reversal_5d", "volatility_21d"])
    )
    assert set(features["feature"]) == {"reversal_5d", "volatility_21d"}
    # the labels ending on L could not be computed at L; they are written at L + 1
    with caplog.at_level(logging.WARNING):
        assert stages.compute_labels(ResearchContext(late_lake, L)).empty
    assert "research labels" in caplog.text
    labels = stages.compute_labels(ResearchContext(late_lake, NEXT))
    for h in (5, 21):
        assert (labels["valid_date"] == CAL.offset(L, -h)).sum() >= 20 * 3, h
        assert (labels["valid_date"] == CAL.offset(NEXT, -h)).sum() >= 20 * 3, h


def test_backtest_over_a_late_folder_completes_and_names_the_skipped_session(
    late_lake: Lake, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        result = run_backtest(late_lake, *RANGE, CONFIG, write_report=False)
    days = CAL.sessions(*RANGE)
    assert list(pd.to_datetime(result.daily["date"]).dt.date) == days
    assert set(result.skipped) == {L} and "late or missing" in result.skipped[L]
    assert f"{L}: session skipped" in caplog.text
    daily = result.daily.set_index(pd.to_datetime(result.daily["date"]).dt.date)
    # L: nothing decided, nothing traded the next session; the book carried at stale marks
    assert daily.loc[NEXT, "turnover"] == 0.0
    assert np.isfinite(daily["nav"]).all()
    # the sessions around it trade as usual
    assert (daily.loc[[d for d in days if d not in (L, NEXT)], "turnover"] > 0).sum() >= 4
