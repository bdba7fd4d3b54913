"""Staged rollout over simulated sessions: a policy challenger passes its gates in paper
and in canary and is promoted to full (production then decides under it); a planted bad
scorer fails its live-IC gate in paper, the shipped long-only policy (infeasible on a
30-name book from cash under its turnover cap) fails the optimizer gate, and a candidate
whose orders pre-trade rejects (a planted kill switch) fails the breach gate: each is
rolled back automatically; the audit trail (``rollout_events``) and the PM report show it all."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import pandas as pd
import pytest

from pipelines.daily.config import DailyConfig
from pipelines.lake import Lake
from pipelines.lake.stage_state import StageState
from pipelines.portfolio.policy import POLICY_DIR
from pipelines.report.pm import ReportSubject, render_pm_report
from pipelines.risk import kill_switch
from pipelines.rollout import session as rollout
from pipelines.rollout.config import Gates, RolloutConfig
from pipelines.rollout.events import candidates, read_events
from pipelines.rollout.gates import GateValues
from pipelines.testing.lakes import simulated_lake
from pipelines.timeline import LATEST, trading_calendar

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
    # The challenger policy: production's, trading faster (a real candidate's kind of change).
    default = (POLICY_DIR / "default.yaml").read_text()
    calm = root / "faster.yaml"
    calm.write_text(
        default.replace("name: default", "name: faster").replace(
            "turnover_cap: 0.30", "turnover_cap: 0.60"
        )
    )
    for cid, kind, ref in (
        ("faster", "policy", str(calm)),
        ("inverted", "scorer", "tests.rollout.planted:InvertedSentiment"),
        ("longonly", "policy", "long_only"),
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
            if c.candidate_id == "faster" and c.last_verdict == "pass" and c.stage != "full":
                rollout.promote(lake, "faster", day=day, actor="pm", production=PRODUCTION)
    rollout.run_production_day(lake, days[4], PRODUCTION, write_report=False)
    # A planted pre-trade breach: the kill switch engaged during a candidate's first
    # session (every order it generates is rejected by pre-trade), released after.
    rollout.start(
        lake,
        "blocked",
        kind="scorer",
        ref="sentiment",
        portfolio_id="main",
        day=days[4],
        config=CONFIG,
        actor="quant",
    )
    days.append(cal.next_session(days[4]))
    kill_switch.engage(lake, reason="planted breach", actor="test")
    gates[days[5]] = rollout.run_shadows(lake, days[5], PRODUCTION).gates
    kill_switch.release(lake, reason="planted breach over", actor="test")
    return Sim(lake, days, gates, rollout.status(lake))


def test_the_good_challenger_is_promoted_to_full(sim: Sim) -> None:
    d1, d2, d3, d4, d5, _ = sim.days
    paper, canary = sim.gates[d2]["faster"], sim.gates[d4]["faster"]
    assert sim.gates[d1]["faster"].verdict == "pending"
    assert paper.verdict == "pass" and paper.ic is not None and paper.ic > 0
    assert paper.slippage_bps is not None  # its paper book traded and was costed
    assert canary.verdict == "pass" and canary.ic is not None and canary.ic > 0
    assert canary.tracking_error is not None and canary.tracking_error > 0
    assert canary.pretrade_breaches == 0 and canary.undecided_sessions == 0
    row = sim.final.set_index("candidate_id").loc["faster"]
    assert row["stage"] == "full"
    books = _books(sim, d1, d4)
    paper_book = books[books["portfolio_id"] == "main.faster.paper"]
    assert len(paper_book) == 4 and paper_book["n_positions"].iloc[-1] > 5
    # The canary traded its own book, funded with 10% of production's NAV.
    canary_book = books[books["portfolio_id"] == "main.faster.canary"]
    assert list(canary_book["valid_date"]) == [d3, d4]
    assert canary_book["nav"].iloc[0] == pytest.approx(1_000_000, rel=0.02)
    assert canary_book["n_positions"].iloc[-1] > 5
    # From the session after the promotion production decides under the promoted policy.
    settings = StageState(sim.lake, "main", d5).get("session_config")
    assert settings["policy"]["name"].endswith("faster.yaml")
    assert _books(sim, d5, d5)["optimizer_status"].iloc[0] in ("optimal", "relaxed")


def _books(sim: Sim, start: dt.date, end: dt.date) -> pd.DataFrame:
    frame = sim.lake.as_of("daily_book", known_at=LATEST, valid_at=(start, end)).to_pandas()
    return frame.sort_values(["portfolio_id", "valid_date"]).reset_index(drop=True)


def test_the_bad_challengers_are_rolled_back_automatically(sim: Sim) -> None:
    d1, d2, d3, _, _, d6 = sim.days
    failed = sim.gates[d2]["inverted"]
    assert failed.verdict == "fail" and failed.failed_gates == "ic"
    assert failed.ic is not None and failed.ic < 0
    # An optimizer without an answer fails at once, before the window is full.
    infeasible = sim.gates[d1]["longonly"]
    assert infeasible.verdict == "fail" and infeasible.failed_gates == "optimizer"
    assert infeasible.sessions == 1 and infeasible.undecided_sessions == 1
    # Rolled back: no more books, no more gates.
    assert "inverted" not in sim.gates[d3] and "longonly" not in sim.gates[d2]
    # A pre-trade breach fails at once too.
    blocked = sim.gates[d6]["blocked"]
    assert blocked.verdict == "fail" and blocked.failed_gates == "pretrade_breaches"
    assert blocked.sessions == 1 and blocked.pretrade_breaches > 0
    assert set(sim.gates[d6]) == {"blocked"}  # the others are full or rolled back
    stages = sim.final.set_index("candidate_id")["stage"].to_dict()
    assert stages == {
        "faster": "full",
        "inverted": "rolled_back",
        "longonly": "rolled_back",
        "blocked": "rolled_back",
    }


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
    assert steps["longonly"] == [
        ("start", "paper", "quant"),
        ("gates", "paper", "gates"),
        ("rollback", "rolled_back", "gates"),
    ]
    assert steps["faster"] == [
        ("start", "paper", "quant"),
        ("gates", "paper", "gates"),
        ("gates", "paper", "gates"),
        ("promote", "canary", "pm"),
        ("gates", "canary", "gates"),
        ("gates", "canary", "gates"),
        ("promote", "full", "pm"),
    ]
    assert [s[:2] for s in steps["blocked"]] == [
        ("start", "paper"),
        ("gates", "paper"),
        ("rollback", "rolled_back"),
    ]
    reasons = events.set_index("event_id")["reason"]
    assert reasons["blocked:00002:rollback"].endswith("pretrade_breaches")
    assert reasons["inverted:00003:rollback"] == "automatic: gate(s) failed in paper: ic"
    assert reasons["longonly:00002:rollback"] == "automatic: gate(s) failed in paper: optimizer"
    gates = events[(events["candidate_id"] == "faster") & (events["event"] == "gates")]
    assert gates["ic"].notna().sum() >= 3 and gates["tracking_error"].notna().sum() >= 1
    promoted = events[(events["event"] == "promote") & (events["stage_after"] == "canary")]
    assert json.loads(promoted["detail"].iloc[0])["canary_capital"] == pytest.approx(1e6)


def test_the_pm_report_shows_promotion_and_rollbacks(sim: Sim) -> None:
    day = sim.days[4]
    page = render_pm_report(sim.lake, day, ReportSubject("main"))
    section = page[page.index("<h2>Rollout") :]
    for name, stage in (
        ("faster", "full"),
        ("inverted", "rolled_back"),
        ("longonly", "rolled_back"),
    ):
        assert name in section and stage in section
    assert "automatic: gate(s) failed in paper: ic" in section
    assert "promoted to full" in section
