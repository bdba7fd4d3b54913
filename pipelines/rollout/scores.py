"""Where a candidate's scores come from, and the production config it would run under.

* ``model``: a model of the lake's ``model_registry`` scores the session's universe from
  the stored features (the same rank-gauss matrix :func:`~pipelines.research.stages.score_day`
  uses) — in memory: ``alpha_scores`` holds production's scores only;
* ``scorer``: a builtin scorer (``builtin``, ``sentiment``, ``price``) or a
  ``module:attribute`` naming a :class:`~pipelines.daily.protocols.ScoreSource` class
  (instantiated without arguments) — a user's own signal;
* ``policy``: production's score source, under the candidate policy.
"""

from __future__ import annotations

import datetime as dt
import importlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.daily import stages
from pipelines.daily.config import DailyConfig
from pipelines.daily.protocols import ScoreSource
from pipelines.daily.scoring import BuiltinScores, PriceScores, SentimentScores
from pipelines.lake import Lake
from pipelines.lake.interface import Store
from pipelines.pit.snapshot import MarketSnapshot
from pipelines.rollout.events import FULL, Candidate, RolloutError


@dataclass(frozen=True)
class ModelScores:
    """Scores of one registered model, computed from the session's stored features."""

    lake: Lake
    model_id: str

    def scores(self, store: Store, day: dt.date, snapshot: MarketSnapshot) -> pd.DataFrame:
        from models.factory import restore_model
        from models.lake_store import load_model
        from pipelines.research.stages import ResearchContext, feature_matrix

        ctx = ResearchContext(self.lake, day)
        stored = load_model(self.lake, self.model_id, ctx.now())
        model = restore_model(stored.record.spec, stored.record.booster)
        members, X = feature_matrix(ctx, stored.record.features)
        values = model.predict_matrix(X) if len(members) else np.empty(0)
        return pd.DataFrame(
            {"security_id": members.astype(str), "score": values, "model_id": self.model_id}
        )


def scorer(ref: str) -> ScoreSource:
    """The score source a ``scorer`` candidate names (module docstring)."""
    builtin: dict[str, ScoreSource] = {
        "builtin": BuiltinScores(),
        "sentiment": SentimentScores(),
        "price": PriceScores(),
    }
    if ref in builtin:
        return builtin[ref]
    module, _, attr = ref.partition(":")
    if not attr:
        raise RolloutError(
            f"scorer {ref!r}: expected one of {sorted(builtin)} or 'module:attribute'"
        )
    try:
        factory = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise RolloutError(f"scorer {ref!r} cannot be imported: {exc}") from None
    source: ScoreSource = factory()
    return source


def score_source(lake: Lake, candidate: Candidate, production: DailyConfig) -> ScoreSource:
    """The scores the candidate's books decide on."""
    if candidate.kind == "model":
        return ModelScores(lake, candidate.ref)
    if candidate.kind == "scorer":
        return scorer(candidate.ref)
    return stages.score_source(production)


def shadow_config(candidate: Candidate, production: DailyConfig, stage: str) -> DailyConfig:
    """Production's config for the candidate's ``stage`` book: its own portfolio id (its
    own paper account and books), the candidate policy, auto-approval (a shadow sends to
    the paper broker only), no shared portfolio tables, and for the canary the capital it
    was funded with."""
    update: dict[str, object] = {
        "portfolio_id": candidate.book(stage),
        "approval": production.approval.model_copy(update={"auto_approve": True}),
        # The risk_* tables are production's record of the session (not per portfolio);
        # a shadow's targets and risk model stay in its own stage state.
        "record_portfolio_tables": False,
    }
    if candidate.kind == "policy":
        update["policy"] = candidate.ref
    if stage == "canary" and candidate.canary_capital is not None:
        update["initial_capital"] = candidate.canary_capital
    return production.model_copy(update=update)


def effective_config(
    production: DailyConfig, promoted: list[Candidate]
) -> tuple[DailyConfig, ScoreSource | None]:
    """Production's config and score source once candidates reached ``full``: the latest
    full policy replaces the config's, the latest full scorer its score source (None:
    the config's own). A full model needs nothing here: promotion made it the champion
    (``model_champion``), which the research stage scores with."""
    config, source = production, None
    for c in sorted(
        (c for c in promoted if c.stage == FULL and c.portfolio_id == production.portfolio_id),
        key=lambda c: (c.stage_since, c.last_seq),
    ):
        if c.kind == "policy":
            config = config.model_copy(update={"policy": c.ref})
        elif c.kind == "scorer":
            source = scorer(c.ref)
    return config, source
