"""Rollout steps: start a candidate, run its shadow books for a session and judge its
gates, promote, roll back. Every step is one ``rollout_events`` row.

Books. A candidate in ``paper`` runs one shadow portfolio (``<portfolio>.<candidate>.paper``)
beside production: the same lake, the same daily stages (:func:`pipelines.daily.loop.run_day`),
its own paper-broker account, orders, fills, positions and ``daily_book``, at production's
capital. Promoted to ``canary``, it keeps the paper book (the reference it is tracked
against) and adds a canary book (``….canary``): its own paper-broker account funded with
``canary_fraction`` of production's NAV on the promotion session. The canary is a shadow
book sized as the declared fraction, not a slice of production's orders — the simplest
honest reading while the only venues are the paper broker and FIX: what the gates learn
(tracking error, costs at the canary's size, pre-trade) is the same, and production's book
is never at risk. At ``full`` the candidate becomes production's: a model is recorded as
champion (``model_champion``, scored by research from the next session), a policy or a
scorer replaces production's (:func:`pipelines.rollout.scores.effective_config`, read by
:func:`run_production_day`). A rollback stops the books; from ``full`` it restores the
champion the model replaced.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pipelines.daily.config import DailyConfig
from pipelines.daily.loop import DayResult, run_day
from pipelines.daily.stages import paper_broker
from pipelines.lake import Lake
from pipelines.rollout import events as ev
from pipelines.rollout.config import RolloutConfig
from pipelines.rollout.events import ACTIVE, CANARY, FULL, NEXT_STAGE, PAPER, ROLLED_BACK
from pipelines.rollout.gates import FAIL, PASS, GateValues, measure
from pipelines.rollout.scores import effective_config, score_source, shadow_config
from pipelines.timeline import LATEST, decision_cutoff, trading_calendar

log = logging.getLogger(__name__)

AUTOMATIC = "gates"


@dataclass
class SessionOutcome:
    """What :func:`run_shadows` did for one session: books run, gates measured, steps taken."""

    day: dt.date
    books: dict[str, DayResult] = field(default_factory=dict)
    gates: dict[str, GateValues] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)


def start(
    lake: Lake,
    candidate_id: str,
    *,
    kind: str,
    ref: str,
    portfolio_id: str,
    day: dt.date,
    config: RolloutConfig | None = None,
    actor: str,
    reason: str = "",
    known_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """Put a new candidate in ``paper`` from the session after ``day``."""
    if kind not in ev.KINDS:
        raise ev.RolloutError(f"candidate kind must be one of {ev.KINDS}: {kind!r}")
    if any(c.candidate_id == candidate_id for c in ev.candidates(lake)):
        raise ev.RolloutError(f"rollout candidate {candidate_id!r} already exists")
    if not candidate_id.replace("-", "").replace("_", "").isalnum():
        raise ev.RolloutError(f"candidate id {candidate_id!r}: letters, digits, - and _ only")
    cfg = config or RolloutConfig.load()
    return ev.record(
        lake,
        day=day,
        candidate_id=candidate_id,
        portfolio_id=portfolio_id,
        kind=kind,
        ref=ref,
        seq=0,
        event="start",
        stage_before=None,
        stage_after=PAPER,
        actor=actor,
        reason=reason or f"start {kind} {ref} in paper",
        known_at=known_at or decision_cutoff(day),
        detail={"config": cfg.model_dump(mode="json")},
    )


def _production_nav(lake: Lake, portfolio_id: str, day: dt.date, fallback: float) -> float:
    try:
        book = lake.as_of(
            "daily_book", known_at=LATEST, valid_at=(day - dt.timedelta(days=30), day)
        ).to_pandas()
    except Exception:
        return fallback
    book = book[book["portfolio_id"] == portfolio_id]
    return float(book.sort_values("valid_date")["nav"].iloc[-1]) if len(book) else fallback


def _step(
    lake: Lake,
    candidate: ev.Candidate,
    day: dt.date,
    event: str,
    stage_after: str,
    *,
    actor: str,
    reason: str,
    known_at: dt.datetime,
    seq: int,
    values: dict[str, Any] | None = None,
    production: DailyConfig | None = None,
) -> dict[str, Any]:
    """Record one event; a move to canary funds the canary, a model's move to full (or
    back from it) changes the champion."""
    detail: dict[str, Any] = {}
    if stage_after == CANARY and candidate.stage != CANARY:
        # Production's NAV on the session; before its first book, its starting capital.
        capital = (production or DailyConfig()).initial_capital
        nav = _production_nav(lake, candidate.portfolio_id, day, capital)
        detail["canary_capital"] = round(candidate.config.canary_fraction * nav, 2)
    if candidate.kind == "model" and FULL in (stage_after, candidate.stage):
        from models.lake_store import champion_id, record_decision

        effective = trading_calendar().next_session(day)
        if stage_after == FULL:
            detail["previous_champion"] = champion_id(lake, LATEST, day)
            champion = candidate.ref
        else:
            champion = candidate.previous_champion or candidate.ref
        record_decision(
            lake,
            effective,
            known_at,
            champion=champion,
            challenger=candidate.ref,
            promoted=stage_after == FULL,
            reason=f"rollout {candidate.candidate_id}: {event}",
            challenger_metric=None,
            champion_metric=None,
        )
    return ev.record(
        lake,
        day=day,
        candidate_id=candidate.candidate_id,
        portfolio_id=candidate.portfolio_id,
        kind=candidate.kind,
        ref=candidate.ref,
        seq=seq,
        event=event,
        stage_before=candidate.stage,
        stage_after=stage_after,
        actor=actor,
        reason=reason,
        known_at=known_at,
        values=values,
        detail=detail,
    )


def promote(
    lake: Lake,
    candidate_id: str,
    *,
    day: dt.date,
    actor: str,
    reason: str = "",
    force: bool = False,
    known_at: dt.datetime | None = None,
    production: DailyConfig | None = None,
) -> dict[str, Any]:
    """Move the candidate to its next stage (paper → canary → full), from the session
    after ``day``. Refused unless its last gate evaluation passed (``force`` overrides,
    and says so in the audit)."""
    c = ev.find(lake, candidate_id)
    if c.stage not in NEXT_STAGE:
        raise ev.RolloutError(f"{candidate_id} is {c.stage}: nothing to promote it to")
    if c.last_verdict != PASS and not force:
        raise ev.RolloutError(
            f"{candidate_id} ({c.stage}): its gates have not passed "
            f"(last verdict: {c.last_verdict or 'none yet'}); use --force to override"
        )
    note = reason or f"promoted to {NEXT_STAGE[c.stage]}"
    if c.last_verdict != PASS:
        note += f" (forced; last verdict {c.last_verdict or 'none'})"
    return _step(
        lake,
        c,
        day,
        "promote",
        NEXT_STAGE[c.stage],
        actor=actor,
        reason=note,
        known_at=known_at or decision_cutoff(day),
        seq=c.last_seq + 1,
        production=production,
    )


def rollback(
    lake: Lake,
    candidate_id: str,
    *,
    day: dt.date,
    actor: str,
    reason: str = "",
    known_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """Stop the candidate from the session after ``day`` (from ``full``: the champion it
    replaced is champion again; a policy or scorer stops being production's)."""
    c = ev.find(lake, candidate_id)
    if c.stage == ROLLED_BACK:
        raise ev.RolloutError(f"{candidate_id} is already rolled back")
    return _step(
        lake,
        c,
        day,
        "rollback",
        ROLLED_BACK,
        actor=actor,
        reason=reason or "rolled back",
        known_at=known_at or decision_cutoff(day),
        seq=c.last_seq + 1,
    )


def run_production_day(
    lake: Lake,
    day: dt.date,
    production: DailyConfig,
    *,
    decision: str | None = None,
    write_report: bool = True,
    clock: Callable[[], dt.datetime] | None = None,
) -> DayResult:
    """Production's session under what rollout made production's (a full policy or
    scorer; a full model is the champion already), on its paper-broker account."""
    config, source = effective_config(production, ev.candidates(lake, before=day))
    broker = paper_broker(lake, config, decision_cutoff(day))
    return run_day(
        lake,
        day,
        config,
        broker,
        scores=source,
        decision=decision,
        write_report=write_report,
        clock=clock,
    )


def run_shadows(lake: Lake, day: dt.date, production: DailyConfig) -> SessionOutcome:
    """Session ``day`` for every active candidate of production's portfolio: its books
    through the daily stages, then its gates (a ``gates`` event); a failing gate rolls it
    back at once, a full passing window promotes it when ``auto_promote`` is on."""
    outcome = SessionOutcome(day)
    base, _ = effective_config(production, ev.candidates(lake, before=day))
    active = [
        c
        for c in ev.candidates(lake, before=day, portfolio_id=production.portfolio_id)
        if c.stage in ACTIVE
    ]
    cutoff = decision_cutoff(day)
    for c in active:
        try:
            source = score_source(lake, c, base)
            for stage in (PAPER, CANARY) if c.stage == CANARY else (PAPER,):
                cfg = shadow_config(c, base, stage)
                broker = paper_broker(lake, cfg, cutoff)
                outcome.books[cfg.portfolio_id] = run_day(
                    lake, day, cfg, broker, scores=source, write_report=False
                )
        except Exception as exc:  # a candidate's failure never stops the others
            # A candidate that cannot run its session cannot be promoted: roll it back and
            # say why; production and the other candidates go on.
            log.exception("%s: rollout %s: its session failed", day, c.candidate_id)
            outcome.steps.append(
                _step(
                    lake,
                    c,
                    day,
                    "rollback",
                    ROLLED_BACK,
                    actor=AUTOMATIC,
                    reason=f"automatic: its session failed: {type(exc).__name__}: {exc}"[:500],
                    known_at=cutoff,
                    seq=c.last_seq + 1,
                )
            )
            continue
        values = measure(lake, c, day)
        outcome.gates[c.candidate_id] = values
        seq = c.last_seq + 1
        outcome.steps.append(
            ev.record(
                lake,
                day=day,
                candidate_id=c.candidate_id,
                portfolio_id=c.portfolio_id,
                kind=c.kind,
                ref=c.ref,
                seq=seq,
                event="gates",
                stage_before=c.stage,
                stage_after=c.stage,
                actor=AUTOMATIC,
                reason=_gate_line(c, values),
                known_at=cutoff,
                values=values.as_dict(),
                detail={"gates": c.config.gates.model_dump(mode="json")},
            )
        )
        if values.verdict == FAIL:
            log.warning("%s: rollout %s rolled back: %s", day, c.candidate_id, values.failed_gates)
            outcome.steps.append(
                _step(
                    lake,
                    c,
                    day,
                    "rollback",
                    ROLLED_BACK,
                    actor=AUTOMATIC,
                    reason=f"automatic: gate(s) failed in {c.stage}: {values.failed_gates}",
                    known_at=cutoff,
                    seq=seq + 1,
                )
            )
        elif values.verdict == PASS and c.config.auto_promote:
            outcome.steps.append(
                _step(
                    lake,
                    c,
                    day,
                    "promote",
                    NEXT_STAGE[c.stage],
                    actor=AUTOMATIC,
                    reason=f"automatic: every gate passed over {values.sessions} sessions",
                    known_at=cutoff,
                    seq=seq + 1,
                    production=base,
                )
            )
    return outcome


def _gate_line(c: ev.Candidate, v: GateValues) -> str:
    def f(x: float | None, spec: str) -> str:
        return "n/a" if x is None else format(x, spec)

    g = c.config.gates
    return (
        f"{c.stage} {v.verdict} after {v.sessions}/{g.sessions} sessions: "
        f"ic {f(v.ic, '.4f')} (min {g.min_ic}), "
        f"tracking error {f(v.tracking_error, '.4f')} (max {g.max_tracking_error}), "
        f"slippage {f(v.slippage_bps, '.2f')} bps (max {g.max_slippage_bps}), "
        f"pre-trade breaches {v.pretrade_breaches} (max {g.max_pretrade_breaches}), "
        f"undecided sessions {v.undecided_sessions} (max 0)"
    )


def status(lake: Lake, portfolio_id: str | None = None) -> pd.DataFrame:
    """One row per candidate: stage, since, the last gate values and verdict."""
    events = ev.read_events(lake)
    rows = []
    for c in ev.candidates(lake, portfolio_id=portfolio_id):
        mine = events[events["candidate_id"] == c.candidate_id]
        gates = mine[mine["event"] == "gates"]
        last = gates.iloc[-1] if len(gates) else None
        rows.append(
            {
                "candidate_id": c.candidate_id,
                "portfolio_id": c.portfolio_id,
                "kind": c.kind,
                "ref": c.ref,
                "stage": c.stage,
                "since": c.stage_since.isoformat(),
                "last_session": None if last is None else str(last["valid_date"]),
                "verdict": c.last_verdict,
                "ic": None if last is None else last["ic"],
                "tracking_error": None if last is None else last["tracking_error"],
                "slippage_bps": None if last is None else last["slippage_bps"],
                "pretrade_breaches": None if last is None else last["pretrade_breaches"],
                "undecided_sessions": None if last is None else last["undecided_sessions"],
                "last_event": str(mine.iloc[-1]["event"]) + ": " + str(mine.iloc[-1]["reason"]),
            }
        )
    return pd.DataFrame(rows)
