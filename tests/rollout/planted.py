"""A planted bad signal for the rollout tests: the simulator's sentiment signal, inverted
(its live IC is the sentiment scorer's, negated), loaded by the rollout as a ``scorer``
candidate (``tests.rollout.planted:InvertedSentiment``) as a user's own scorer would be."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from pipelines.daily.scoring import SentimentScores
from pipelines.lake.interface import Store
from pipelines.pit.snapshot import MarketSnapshot


class InvertedSentiment:
    """Minus the builtin sentiment score."""

    def scores(self, store: Store, day: dt.date, snapshot: MarketSnapshot) -> pd.DataFrame:
        frame = SentimentScores().scores(store, day, snapshot)
        return frame.assign(score=-frame["score"], model_id="planted:inverted_sentiment")
