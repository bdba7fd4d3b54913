"""Staged rollout over simulated sessions: a policy challenger passes its gates in paper
and in canary and is promoted to full (production then decides under it); a planted bad
scorer fails its live-IC gate in paper and is rolled back automatically; the audit trail
(``rollout_events``) and the PM report show both."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import pandas as pd
import pytest

from pipelines.daily.config import DailyConfig
from pipelines.lake import Lake
from pipelines.lake.stage_state import StageState
from pipelines.report.pm import ReportSubject, render_pm_report
from pipelines.rollout import session as rollout
from pipelines.rollout.config import Gates, RolloutConfig
from pipelines.rollout.events import candidates, read_events
from pipelines.rollout.gates import GateValues
from pipelines.testing.lakes import simulated_lake
from pipelines.timeline import trading_calendar

pytestmark = [pytest.mark.unit, pytest.mark.slow]

PRODUCTION = DailyConfig(lookback_sessions=40, record_portfolio_tables=False)
#: Two sessions per stage; generous cost and tracking bounds (a 30-name book over days):
#: what must decide here is the IC gate, and the values are recorded either way.
CONFIG = RolloutConfig(
    gates=Gates(sessions=2, min_ic=0.0, max_tracking_error=1.0, max_slippage_bps=1000.0),
    canary_fraction=0.1,
)
START = dt.date(2024, 4, 1)  # the candidates start after this session


@dataclass
class Sim:
    lake: Lake
    days: list[dt.date]
    gates: dict[dt.date, dict[str, GateValues]]
    final: pd.DataFrame


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Sim:
    root = tmp_path_factory.mktemp("rollout")
    lake = simulated_lake(
        root / "lake",
        universe=30,
        start=dt.date(2024, 1, 2),
        end=dt.date(2024, 4, 30),
        signal=0.3,
        seed=11,
    )
    for cid, kind, ref in (
        ("longonly", "policy", "long_only"),
        ("inverted", "scorer", "tests.rollout.planted:InvertedSentiment"),
    ):
        rollout.start(
            lake,
            cid,
            kind=kind,
            ref=ref,
            portfolio_id="main",
            day=START,
            config=CONFIG,
            actor="quant",
        )
    cal = trading_calendar()
    days = [cal.offset(START, i) for i in range(1, 6)]
    gates: dict[dt.date, dict[str, GateValues]] = {}
    for day in days[:4]:
        gates[day] = rollout.run_shadows(lake, day, PRODUCTION).gates
        for c in candidates(lake):
            if c.candidate_id == "longonly" and c.last_verdict == "pass" and c.stage != "full":
                rollout.promote(lake, "longonly", day=day, actor="pm", production=PRODUCTION)
    rollout.run_production_day(lake, days[4], PRODUCTION, write_report=False)
    return Sim(lake, days, gates, rollout.status(lake))


def test_the_good_challenger_is_promoted_to_full(sim: Sim) -> None:
    d1, d2, d3, d4, d5 = sim.days
    paper, canary = sim.gates[d2]["longonly"], sim.gates[d4]["longonly"]
    assert sim.gates[d1]["longonly"].verdict == "pending"
    assert paper.verdict == "pass" and paper.ic is not None and paper.ic > 0
    assert canary.verdict == "pass" and canary.tracking_error is not None
    assert canary.pretrade_breaches == 0
    row = sim.final.set_index("candidate_id").loc["longonly"]
    assert row["stage"] == "full"
    # The canary traded its own book at 10% of production's NAV.
    book = sim.lake.as_of(
        "daily_book", known_at=pd.Timestamp.max.tz_localize("UTC"), valid_at=(d3, d4)
    ).to_pandas()
    canary_nav = book[book["portfolio_id"] == "main.longonly.canary"]["nav"]
    assert len(canary_nav) == 2 and canary_nav.iloc[0] == pytest.approx(1_000_000, rel=0.02)
    # From the session after the promotion production decides under the promoted policy.
    settings = StageState(sim.lake, "main", d5).get("session_config")
    assert settings["policy"]["name"] == "long_only"


def test_the_bad_challenger_is_rolled_back_automatically(sim: Sim) -> None:
    _, d2, d3, _, _ = sim.days
    failed = sim.gates[d2]["inverted"]
    assert failed.verdict == "fail" and failed.failed_gates == "ic"
    assert failed.ic is not None and failed.ic < 0
    assert "inverted" not in sim.gates[d3]  # rolled back: no more books, no more gates
    assert sim.final.set_index("candidate_id").loc["inverted", "stage"] == "rolled_back"


def test_the_audit_trail_holds_every_step(sim: Sim) -> None:
    events = read_events(sim.lake)
    steps = {
        cid: list(zip(rows["event"], rows["stage_after"], rows["actor"], strict=True))
        for cid, rows in events.groupby("candidate_id")
    }
    assert steps["inverted"] == [
        ("start", "paper", "quant"),
        ("gates", "paper", "gates"),
        ("gates", "paper", "gates"),
        ("rollback", "rolled_back", "gates"),
    ]
    assert [s[:2] for s in steps["longonly"]] == [
        ("start", "paper"),
        ("gates", "paper"),
        ("gates", "paper"),
        ("promote", "canary"),
        ("gates", "canary"),
        ("gates", "canary"),
        ("promote", "full"),
    ]
    rollback = events[events["event"] == "rollback"].iloc[0]
    assert "ic" in rollback["reason"]
    promoted = events[(events["event"] == "promote") & (events["stage_after"] == "canary")]
    assert json.loads(promoted["detail"].iloc[0])["canary_capital"] > 0


def test_the_pm_report_shows_both(sim: Sim) -> None:
    day = sim.days[-1]
    page = render_pm_report(sim.lake, day, ReportSubject("main"))
    section = page[page.index("Rollout") :]
    assert "longonly" in section and "full" in section
    assert "inverted" in section and "rolled_back" in section
    assert "automatic: gate(s) failed in paper: ic" in section
