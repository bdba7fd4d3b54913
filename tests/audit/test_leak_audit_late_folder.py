"""A vendor folder published after its session's cutoff is no leak: the session decided
without it, the next one used it, and the audit finds every stage reproducible (the labels
the next session caught up on included)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pandas as pd
import pytest

from pipelines.audit.leaks import audit_leaks
from pipelines.lake import Lake
from pipelines.research.stages import (
    ResearchContext,
    compute_features,
    compute_labels,
    compute_universe,
)
from pipelines.timeline import decision_cutoff, trading_calendar

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LATE = dt.date(2020, 2, 5)
AUDITED = (dt.date(2020, 2, 4), dt.date(2020, 2, 10))


def _late(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    px = frames["prices"].copy()
    day = px["valid_date"] == pd.Timestamp(LATE)
    px.loc[day, "known_at"] = pd.Timestamp(decision_cutoff(LATE)) + pd.Timedelta(hours=1)
    frames["prices"] = px
    return frames


def test_a_late_folder_is_no_leak(make_simulated_lake: Callable[..., Lake]) -> None:
    lake = make_simulated_lake(
        universe=30, start=dt.date(2019, 9, 3), end=dt.date(2020, 3, 31), perturb=_late
    )
    sessions = trading_calendar().sessions(*AUDITED)
    for day in sessions:
        ctx = ResearchContext(lake, day)
        compute_universe(ctx)
        compute_features(ctx)
        compute_labels(ctx)

    report = audit_leaks(lake, *AUDITED, stages=("universe", "features", "labels"))

    assert report.verdict == "clean", "\n".join(report.lines())
    by = {(c.stage, c.against): c for c in report.comparisons}
    # the late session wrote nothing to compare with; hindsight still covers it
    assert by[("features", "lake")].sessions == len(sessions) - 1
    assert by[("features", "hindsight")].sessions == len(sessions)
    # the session after the late one wrote the labels ending on it as well
    assert by[("labels", "lake")].rows > by[("labels", "hindsight")].rows
