"""The rollout's state: every step is a row of ``rollout_events`` (the audit trail), and
a candidate's stage is the ``stage_after`` of its latest row.

A step recorded for session ``D`` takes effect from the session after ``D``: the runner
of session ``D`` reads the events of sessions before ``D`` (:func:`candidates` with
``before=D``), so re-running a session decides under the same stages.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pipelines.errors import AlphaFactoryError
from pipelines.lake.catalog.rollout import ROLLOUT_EVENTS
from pipelines.lake.interface import Store
from pipelines.rollout.config import RolloutConfig
from pipelines.timeline import ALL_DATES, LATEST

PAPER, CANARY, FULL, ROLLED_BACK = "paper", "canary", "full", "rolled_back"
#: Stages in which a candidate runs its shadow books and is judged every session.
ACTIVE = (PAPER, CANARY)
NEXT_STAGE = {PAPER: CANARY, CANARY: FULL}
KINDS = ("model", "policy", "scorer")
TABLE = ROLLOUT_EVENTS.name


class RolloutError(AlphaFactoryError, ValueError):
    """A rollout step that cannot be taken (unknown candidate, wrong stage, gates failing)."""


@dataclass(frozen=True)
class Candidate:
    """A model, policy or scorer under rollout, as its events say."""

    candidate_id: str
    portfolio_id: str
    kind: str
    ref: str
    stage: str
    #: Session of the event that put it in ``stage`` (the stage runs from the next one).
    stage_since: dt.date
    config: RolloutConfig
    #: The canary account's starting cash (set when promoted to canary).
    canary_capital: float | None
    #: The champion the model replaced when promoted to full (restored on rollback).
    previous_champion: str | None
    #: The verdict of the last ``gates`` event of the current stage, or None.
    last_verdict: str | None
    last_seq: int

    def book(self, stage: str) -> str:
        """The portfolio id of the candidate's ``paper`` or ``canary`` shadow book."""
        return f"{self.portfolio_id}.{self.candidate_id}.{stage}"


def read_events(store: Store, before: dt.date | None = None) -> pd.DataFrame:
    """Every event (sessions before ``before``, or all), in the order they were taken."""
    start, end = ALL_DATES
    if before is not None:
        end = before - dt.timedelta(days=1)
    try:
        frame = store.as_of(TABLE, known_at=LATEST, valid_at=(start, end)).to_pandas()
    except Exception:
        return pd.DataFrame(columns=[f.name for f in ROLLOUT_EVENTS.fields])
    if frame.empty:
        return frame
    return frame.sort_values(["candidate_id", "seq"]).reset_index(drop=True)


def candidates(
    store: Store, before: dt.date | None = None, portfolio_id: str | None = None
) -> list[Candidate]:
    """Every candidate's state from its events (of sessions before ``before``)."""
    events = read_events(store, before)
    out: list[Candidate] = []
    for cid, rows in events.groupby("candidate_id", sort=True):
        start = rows[rows["event"] == "start"]
        if start.empty:
            continue
        first = start.iloc[0]
        if portfolio_id is not None and first["portfolio_id"] != portfolio_id:
            continue
        detail = json.loads(str(first["detail"]))
        staged = rows.dropna(subset=["stage_after"])
        changes = staged[staged["stage_after"] != staged["stage_before"]]
        last = changes.iloc[-1] if len(changes) else first
        canary_capital = None
        previous_champion = None
        for _, r in rows.iterrows():
            d = json.loads(str(r["detail"]))
            canary_capital = d.get("canary_capital", canary_capital)
            previous_champion = d.get("previous_champion", previous_champion)
        # Only the current stage's evaluations count: a pass in paper says nothing of canary.
        gates = rows[(rows["event"] == "gates") & (rows["seq"] > int(last["seq"]))]
        out.append(
            Candidate(
                candidate_id=str(cid),
                portfolio_id=str(first["portfolio_id"]),
                kind=str(first["kind"]),
                ref=str(first["ref"]),
                stage=str(staged.iloc[-1]["stage_after"]),
                stage_since=pd.Timestamp(last["valid_date"]).date(),
                config=RolloutConfig.model_validate(detail["config"]),
                canary_capital=canary_capital,
                previous_champion=previous_champion,
                last_verdict=str(gates.iloc[-1]["verdict"]) if len(gates) else None,
                last_seq=int(rows["seq"].max()),
            )
        )
    return out


def find(store: Store, candidate_id: str, before: dt.date | None = None) -> Candidate:
    """The candidate ``candidate_id``; :class:`RolloutError` listing the known ones."""
    known = candidates(store, before)
    for c in known:
        if c.candidate_id == candidate_id:
            return c
    names = ", ".join(c.candidate_id for c in known) or "none"
    raise RolloutError(f"no rollout candidate {candidate_id!r} (known: {names})")


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def record(
    store: Store,
    *,
    day: dt.date,
    candidate_id: str,
    portfolio_id: str,
    kind: str,
    ref: str,
    seq: int,
    event: str,
    stage_before: str | None,
    stage_after: str,
    actor: str,
    reason: str,
    known_at: dt.datetime,
    values: dict[str, Any] | None = None,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Append one event (idempotent: the batch id hashes its content) and return it."""
    values = {k: _clean(v) for k, v in (values or {}).items()}
    row: dict[str, Any] = {
        "event_id": f"{candidate_id}:{seq:05d}:{event}",
        "candidate_id": candidate_id,
        "portfolio_id": portfolio_id,
        "kind": kind,
        "ref": ref,
        "seq": seq,
        "event": event,
        "stage_before": stage_before,
        "stage_after": stage_after,
        "sessions": values.get("sessions"),
        "ic": values.get("ic"),
        "tracking_error": values.get("tracking_error"),
        "slippage_bps": values.get("slippage_bps"),
        "pretrade_breaches": values.get("pretrade_breaches"),
        "undecided_sessions": values.get("undecided_sessions"),
        "verdict": values.get("verdict"),
        "failed_gates": values.get("failed_gates"),
        "actor": actor,
        "reason": reason,
        "detail": json.dumps(detail or {}, sort_keys=True, default=str),
        "recorded_at": pd.Timestamp(known_at),
    }
    content = json.dumps(row, sort_keys=True, default=str)
    digest = hashlib.sha256(content.encode()).hexdigest()[:24]
    frame = pd.DataFrame([row])
    for col in ("sessions", "pretrade_breaches", "undecided_sessions"):
        frame[col] = frame[col].astype("Int64")
    for col in ("ic", "tracking_error", "slippage_bps"):
        frame[col] = frame[col].astype("float64")
    store.write(TABLE, frame, known_at=known_at, valid_date=day, batch_id=f"{TABLE}:{digest}")
    return row
