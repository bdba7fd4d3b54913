"""Score sources: the research stage's ``alpha_scores`` table, or a builtin scorer.

``LakeScores`` reads what the research DAG wrote (columns security_id, valid_date,
known_at, score, model_id), as known at the day's cutoff, the latest score per security
no older than ``max_age_days``. The builtin scorer (:class:`BuiltinScores`) is the
fallback used when no model has scored the day (a fresh lake, no champion yet, a backtest
without a trained model):

* ``SentimentScores`` when the lake holds news sentiment known at the cutoff: the
  cross-sectional z-score of the mean sentiment of the last ``window`` sessions — the
  simulator's documented signal, so the loop has something real to trade;
* else ``PriceScores``, which needs nothing but prices (and corporate actions, for total
  returns): a vendor delivering only prices, the security master and corporate actions
  still gets scores, targets and a report.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.errors import AlphaFactoryError
from pipelines.lake.errors import UnknownTableError
from pipelines.lake.interface import Store
from pipelines.pit.snapshot import MarketSnapshot
from pipelines.portfolio.alpha import zscore
from pipelines.timeline import decision_cutoff

SCORE_COLUMNS = ["security_id", "score", "model_id"]

log = logging.getLogger(__name__)


class NoScoresError(AlphaFactoryError, LookupError):
    """No usable scores for the day."""


@dataclass(frozen=True)
class SentimentScores:
    """Builtin scorer: z-score of the mean sentiment over the last ``window`` sessions."""

    window: int = 5
    model_id: str = "builtin:sentiment5"

    def scores(self, store: Store, day: dt.date, snapshot: MarketSnapshot) -> pd.DataFrame:
        sent = snapshot.sentiment
        if sent.empty or not sent.notna().to_numpy().any():
            raise NoScoresError(f"no sentiment known at {snapshot.known_at} for {day}")
        recent = sent[sent.index <= pd.Timestamp(day)].tail(self.window).mean()
        universe = snapshot.universe
        z = zscore(recent.reindex(universe)).dropna()
        if z.empty:
            raise NoScoresError(f"no sentiment for the universe of {day}")
        return _frame(z, self.model_id)


def _frame(z: pd.Series, model_id: str) -> pd.DataFrame:
    return pd.DataFrame(
        {"security_id": z.index.astype(str), "score": z.to_numpy(), "model_id": model_id}
    )


@dataclass(frozen=True)
class PriceScores:
    """Builtin price-only scorer: short-term reversal plus medium-term momentum.

    The score is the z-score of the mean of two cross-sectional z-scores over the
    universe (winsorized at ±3, :func:`~pipelines.portfolio.alpha.zscore`):

    * reversal: minus the total return of the last ``reversal_window`` sessions (all of
      them observed) — the library's ``reversal_5d``; one-week losers tend to rebound
      (Jegadeesh 1990, Lehmann 1990);
    * momentum: the total return from ``momentum_window`` sessions ago up to
      ``momentum_skip`` sessions ago, skipping the last month so it does not overlap the
      reversal (the "12-1"/"6-1" construction of Jegadeesh & Titman 1993), over the
      history the snapshot holds (6-1 with the default 130-session lookback), needing at
      least ``min_momentum_sessions`` observed returns.

    Both are classic, documented price anomalies that need no fundamentals and no
    alternative data; equal weights because nothing is fitted (the trained model, once
    there is a champion, replaces this). A name with only one component gets that one;
    a universe where neither can be computed raises :class:`NoScoresError`. Returns are the
    snapshot's total returns (as known at the cutoff), so nothing after the day is read.
    """

    reversal_window: int = 5
    momentum_window: int = 126
    momentum_skip: int = 21
    min_momentum_sessions: int = 21
    model_id: str = "builtin:price_reversal_momentum"

    def components(self, day: dt.date, snapshot: MarketSnapshot) -> pd.DataFrame:
        """Raw ``reversal`` and ``momentum`` per universe security (NaN where not computable)."""
        ret = snapshot.returns[snapshot.returns.index <= pd.Timestamp(day)]
        # log growth, so a window's total return is expm1 of a sum
        with np.errstate(invalid="ignore", divide="ignore"):
            growth = pd.DataFrame(
                np.log1p(ret.to_numpy(dtype=np.float64)), index=ret.index, columns=ret.columns
            )
        # min_count: every session of the window observed, else it is a shorter return
        recent = growth.tail(self.reversal_window).sum(min_count=self.reversal_window)
        start = max(0, len(growth) - self.momentum_window)
        past = growth.iloc[start : max(0, len(growth) - self.momentum_skip)]
        total = past.sum(min_count=self.min_momentum_sessions)
        universe = snapshot.universe
        return pd.DataFrame(
            {
                "reversal": -(recent.reindex(universe).map(np.expm1)),
                "momentum": total.reindex(universe).map(np.expm1),
            }
        )

    def scores(self, store: Store, day: dt.date, snapshot: MarketSnapshot) -> pd.DataFrame:
        parts = self.components(day, snapshot)
        z = pd.concat([zscore(parts[c]) for c in parts.columns], axis=1).mean(axis=1)
        z = zscore(z).dropna()
        if z.empty:
            raise NoScoresError(f"no price history to score the universe of {day}")
        return _frame(z, self.model_id)


@dataclass(frozen=True)
class BuiltinScores:
    """The builtin scorer: news sentiment when the lake has it, else prices only."""

    sentiment: SentimentScores = SentimentScores()
    price: PriceScores = PriceScores()

    def scores(self, store: Store, day: dt.date, snapshot: MarketSnapshot) -> pd.DataFrame:
        try:
            return self.sentiment.scores(store, day, snapshot)
        except NoScoresError as exc:
            # a vendor without a sentiment feed: one line, then the price-only scorer
            log.info("builtin scorer for %s: %s; scoring with %s", day, exc, self.price.model_id)
            return self.price.scores(store, day, snapshot)


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
    fallback: BuiltinScores | SentimentScores | PriceScores = BuiltinScores()

    def scores(self, store: Store, day: dt.date, snapshot: MarketSnapshot) -> pd.DataFrame:
        try:
            return self.lake_scores.scores(store, day, snapshot)
        except NoScoresError:
            return self.fallback.scores(store, day, snapshot)
