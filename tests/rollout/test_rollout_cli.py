"""``alphafactory rollout status|start|promote|rollback|run``: one line per step (or JSON),
every step a ``rollout_events`` row; a promotion whose gates have not passed is refused in
one error line unless forced, and the audit says it was forced; a model promoted to full
is the champion from the next session and its rollback restores the one it replaced."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli.main import app
from pipelines.lake import Lake
from pipelines.rollout.events import read_events

pytestmark = pytest.mark.unit
runner = CliRunner()


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["rollout", *args])
    return result.exit_code, result.stdout, result.stderr


def test_rollout_commands_audit_every_step() -> None:
    code, out, _ = _run("status")
    assert code == 0 and out == "no rollout candidates\n"
    code, out, _ = _run(
        "start",
        "lo",
        "--kind",
        "policy",
        "--ref",
        "long_only",
        "--session",
        "2024-04-01",
        "--actor",
        "alice",
        "--reason",
        "try long-only",
    )
    assert code == 0 and out.count("\n") == 1 and "lo: start – → paper" in out
    code, out, err = _run("promote", "lo", "--session", "2024-04-02", "--actor", "bob")
    assert code == 1 and out == "" and err.startswith("error: ") and err.count("\n") == 1
    assert "gates have not passed" in err
    code, out, _ = _run(
        "promote", "lo", "--force", "--session", "2024-04-02", "--actor", "bob", "--json"
    )
    event = json.loads(out)
    assert code == 0 and event["stage_after"] == "canary" and "forced" in event["reason"]
    assert json.loads(event["detail"])["canary_capital"] == pytest.approx(1_000_000.0)
    code, out, _ = _run("rollback", "lo", "--session", "2024-04-03", "--reason", "enough")
    assert code == 0 and "canary → rolled_back" in out and "enough" in out
    code, out, _ = _run("status", "--json")
    (row,) = json.loads(out)
    assert row["candidate_id"] == "lo" and row["stage"] == "rolled_back"
    code, out, err = _run("rollback", "lo")
    assert code == 1 and "already rolled back" in err
    code, out, err = _run("start", "x", "--kind", "nonsense", "--ref", "y")
    assert code == 1 and "kind must be one of" in err
    events = read_events(Lake.from_settings())
    assert list(events["event"]) == ["start", "promote", "rollback"]
    assert list(events["actor"])[:2] == ["alice", "bob"]
    code, out, _ = _run("run", "--session", "2024-04-04")
    assert code == 0 and out == "2024-04-04: no active rollout candidate\n"


def test_a_pass_in_paper_does_not_promote_out_of_canary() -> None:
    from pipelines.rollout import events as ev
    from pipelines.rollout import session as rollout

    lake = Lake.from_settings()
    day = dt.date(2024, 4, 1)
    rollout.start(lake, "c", kind="scorer", ref="price", portfolio_id="main", day=day, actor="a")
    c = ev.find(lake, "c")
    # The gates' own row for a passing paper window (as run_shadows writes it).
    ev.record(
        lake,
        day=dt.date(2024, 4, 2),
        candidate_id="c",
        portfolio_id="main",
        kind=c.kind,
        ref=c.ref,
        seq=1,
        event="gates",
        stage_before="paper",
        stage_after="paper",
        actor="gates",
        reason="paper pass",
        known_at=dt.datetime(2024, 4, 3, tzinfo=dt.UTC),
        values={"verdict": "pass", "sessions": 5, "ic": 0.05},
    )
    assert ev.find(lake, "c").last_verdict == "pass"
    rollout.promote(lake, "c", day=dt.date(2024, 4, 2), actor="pm")
    assert ev.find(lake, "c").stage == "canary" and ev.find(lake, "c").last_verdict is None
    code, _, err = _run("promote", "c", "--session", "2024-04-03")
    assert code == 1 and "last verdict: none yet" in err


def test_a_model_at_full_is_champion_and_its_rollback_restores_the_previous() -> None:
    from models.lake_store import champion_id, record_decision
    from pipelines.timeline import LATEST, decision_cutoff

    lake = Lake.from_settings()
    old = dt.date(2024, 3, 1)
    record_decision(
        lake,
        old,
        decision_cutoff(old),
        champion="m1",
        challenger="m1",
        promoted=True,
        reason="first",
        challenger_metric=None,
        champion_metric=None,
    )
    assert _run("start", "m2", "--kind", "model", "--ref", "m2", "--session", "2024-04-01")[0] == 0
    for session in ("2024-04-02", "2024-04-03"):
        code, out, _ = _run("promote", "m2", "--force", "--session", session)
        assert code == 0, out
    # Champion from the session after the promotion to full; the one before keeps m1.
    assert champion_id(lake, LATEST, dt.date(2024, 4, 3)) == "m1"
    assert champion_id(lake, LATEST, dt.date(2024, 4, 4)) == "m2"
    code, out, _ = _run("rollback", "m2", "--session", "2024-04-05", "--reason", "live IC fell")
    assert code == 0 and "full → rolled_back" in out
    assert champion_id(lake, LATEST, dt.date(2024, 4, 8)) == "m1"
    assert champion_id(lake, LATEST, dt.date(2024, 4, 5)) == "m2"


@pytest.mark.slow
def test_run_is_the_daily_step(
    make_simulated_lake: Callable[..., Lake], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_simulated_lake(universe=20, start=dt.date(2024, 1, 2), end=dt.date(2024, 4, 12))
    config = tmp_path / "daily.yaml"
    config.write_text("lookback_sessions: 40\nrecord_portfolio_tables: false\n")
    monkeypatch.setenv("ALPHAFACTORY_DAILY_CONFIG", str(config))
    assert (
        _run("start", "s", "--kind", "scorer", "--ref", "price", "--session", "2024-04-01")[0] == 0
    )
    code, out, err = _run("run", "--session", "2024-04-02", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["books"] == ["main.s.paper"]
    assert summary["gates"]["s"]["verdict"] == "pending"
    assert [s["event"] for s in summary["steps"]] == ["gates"]
    code, out, _ = _run("status")
    assert code == 0 and "s (scorer price, shadows main): paper since 2024-04-01" in out


def test_a_candidate_whose_session_fails_is_rolled_back_and_the_others_go_on() -> None:
    from pipelines.daily.config import DailyConfig
    from pipelines.rollout import events as ev
    from pipelines.rollout import session as rollout

    lake = Lake.from_settings()
    rollout.start(
        lake,
        "broken",
        kind="scorer",
        ref="no.such.module:Scorer",
        portfolio_id="main",
        day=dt.date(2024, 4, 1),
        actor="a",
    )
    outcome = rollout.run_shadows(lake, dt.date(2024, 4, 2), DailyConfig())
    assert [s["event"] for s in outcome.steps] == ["rollback"]
    assert "its session failed" in outcome.steps[0]["reason"]
    assert "no.such.module" in outcome.steps[0]["reason"]
    assert ev.find(lake, "broken").stage == "rolled_back"
