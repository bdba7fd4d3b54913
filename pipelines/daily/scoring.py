"""Score sources: the research stage's ``alpha_scores`` table, or a builtin scorer.

``LakeScores`` reads what the research DAG wrote (columns security_id, valid_date,
known_at, score, model_id), as known at the day's cutoff, the latest score per security
no older than ``max_age_days``. ``SentimentScores`` is the builtin fallback used when no
model has scored the day (a fresh lake, a backtest without a trained model): the
cross-sectional z-score of the mean news sentiment of the last ``window`` sessions — the
simulator's documented signal, so the loop has something real to trade.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from pipelines.errors import AlphaFactoryError
from pipelines.lake.errors import UnknownTableError
from pipelines.lake.interface import Store
from pipelines.pit.snapshot import MarketSnapshot
from pipelines.portfolio.alpha import zscore
from pipelines.timeline import decision_cutoff

SCORE_COLUMNS = ["security_id", "score", "model_id"]


class NoScoresError(AlphaFactoryError, LookupError):
    """No usable scores for the day."""


@dataclass(frozen=True)
class SentimentScores:
    """Builtin scorer: z-score of the mean sentiment over the last ``window`` sessions."""

    window: int = 5
    model_id: str = "builtin:sentiment5"

    def scores(self, store: Store, day: dt.date, snapshot: MarketSnapshot) -> pd.DataFrame:
        sent = snapshot.sentiment
        if sent.empty:
            raise NoScoresError(f"no sentiment known at {snapshot.known_at} for {day}")
        recent = sent[sent.index <= pd.Timestamp(day)].tail(self.window).mean()
        universe = snapshot.universe
        z = zscore(recent.reindex(universe)).dropna()
        return pd.DataFrame(
            {"security_id": z.index.astype(str), "score": z.to_numpy(), "model_id": self.model_id}
        )


@dataclass(frozen=True)
class LakeScores:
    """Scores the research stage wrote to ``alpha_scores`` (latest per security)."""

    max_age_days: int = 5

    def scores(self, store: Store, day: dt.date, snapshot: MarketSnapshot) -> pd.DataFrame:
        try:
            table = store.as_of(
                "alpha_scores",
                known_at=decision_cutoff(day),
                valid_at=(day - dt.timedelta(days=self.max_age_days), day),
                columns=["security_id", "score", "model_id"],
            )
        except UnknownTableError as exc:
            raise NoScoresError("alpha_scores is not declared (research stage absent)") from exc
        frame = table.to_pandas()
        if frame.empty:
            raise NoScoresError(f"no alpha_scores for {day} (max age {self.max_age_days} days)")
        frame = frame.sort_values(["valid_date", "security_id"]).groupby("security_id").tail(1)
        frame = frame.dropna(subset=["score"])
        return frame[SCORE_COLUMNS].reset_index(drop=True)


@dataclass(frozen=True)
class AutoScores:
    """``alpha_scores`` when the research stage scored the day, else the builtin scorer."""

    lake_scores: LakeScores
    fallback: SentimentScores = SentimentScores()

    def scores(self, store: Store, day: dt.date, snapshot: MarketSnapshot) -> pd.DataFrame:
        try:
            return self.lake_scores.scores(store, day, snapshot)
        except NoScoresError:
            return self.fallback.scores(store, day, snapshot)
