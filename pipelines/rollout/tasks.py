"""Entry point for the ``rollout`` task of the ``portfolio_rebalance`` DAG (after reconcile and
before the report): the rollout's daily step for a session, as a JSON-able summary."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from pipelines.daily.config import DailyConfig
from pipelines.daily.protocols import ScoreSource
from pipelines.daily.tasks import load_config, run_stage
from pipelines.lake import Lake
from pipelines.rollout import events as ev
from pipelines.rollout.scores import effective_config
from pipelines.rollout.session import run_shadows


def _json(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


def run_rollout(session: str) -> dict[str, Any]:
    """Every active candidate's shadow books for ``session`` (ISO date), its gates, and
    the automatic rollbacks and promotions they caused."""
    outcome = run_shadows(Lake.from_settings(), dt.date.fromisoformat(session), load_config())
    return _json(
        {
            "session": session,
            "books": sorted(outcome.books),
            "gates": {k: v.as_dict() for k, v in outcome.gates.items()},
            "steps": [
                {k: s[k] for k in ("candidate_id", "event", "stage_after", "reason")}
                for s in outcome.steps
            ],
        }
    )


def production_config(config: DailyConfig, day: dt.date) -> tuple[DailyConfig, ScoreSource | None]:
    """Production's config and score source for session ``day``: the file's, with what
    staged rollout promoted to full before ``day`` (a policy, a scorer)."""
    return effective_config(config, ev.candidates(Lake.from_settings(), before=day))


def production_stage(stage: str, session: str) -> Any:
    """A ``portfolio_rebalance`` stage under production's config as rollout decided it
    (:func:`pipelines.daily.tasks.run_stage` with :func:`production_config`)."""
    return run_stage(stage, session, resolve=production_config)
