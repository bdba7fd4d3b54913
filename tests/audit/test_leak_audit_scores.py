"""The scores stage under the leak audit: a champion's scores recomputed as known at each
session equal the lake's, until a backdated price makes them differ (named, with cause)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pyarrow.compute as pc
import pytest

from pipelines.audit.leaks import audit_leaks
from pipelines.lake import Lake
from pipelines.research.stages import ResearchConfig, ResearchContext, retrain, score_day
from pipelines.timeline import decision_cutoff, trading_calendar

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SMALL = ResearchConfig(
    train_sessions=40,
    min_train_sessions=20,
    valid_sessions=10,
    num_boost_round=20,
    early_stopping_rounds=5,
)
AUDITED = (dt.date(2020, 2, 3), dt.date(2020, 2, 7))


def test_scores_identical_then_a_backdated_price_is_named(
    make_simulated_lake: Callable[..., Lake],
) -> None:
    lake = make_simulated_lake(universe=30, start=dt.date(2019, 9, 3), end=dt.date(2020, 2, 28))
    assert retrain(ResearchContext(lake, dt.date(2020, 1, 31), SMALL)).promoted
    sessions = trading_calendar().sessions(*AUDITED)
    for day in sessions:  # features and universe are computed on the way, as in the loop
        score_day(ResearchContext(lake, day, SMALL))

    clean = audit_leaks(lake, *AUDITED, stages=("scores",), config=SMALL)
    (scores,) = clean.comparisons
    assert (scores.table, scores.against) == ("alpha_scores", "lake")
    assert scores.identical and scores.sessions == 5 and scores.rows > 0, scores.describe()

    day = sessions[2]
    cut = decision_cutoff(day)
    security = str(lake.as_of("alpha_scores", known_at=cut, valid_at=day)["security_id"][0])
    row = lake.as_of(
        "prices", known_at=cut, valid_at=day, filter=pc.field("security_id") == security
    )
    fixed = row.drop_columns(
        [c for c in row.column_names if c.startswith("_") or c in ("known_at", "valid_year")]
    )
    fixed = fixed.set_column(
        fixed.column_names.index("close"), "close", pc.multiply(fixed["close"], 0.8)
    )
    lake.write("prices", fixed, known_at=row["known_at"][0].as_py() + dt.timedelta(minutes=5))

    leaked = audit_leaks(lake, *AUDITED, stages=("scores",), config=SMALL)
    (scores,) = leaked.comparisons
    assert scores.first is not None, scores.describe()
    assert scores.first.session == day
    assert scores.first.cause.kind == "backdated"
    assert scores.first.cause.table == "prices"
    assert scores.first.cause.key == {"security_id": security, "valid_date": str(day)}
    assert leaked.verdict == "1 leak"
