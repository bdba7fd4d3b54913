"""The seams between the daily loop and the stages other packages own.

The loop calls research, the risk model and ingestion through these small protocols, so
the implementation behind each can change (the research package's ``alpha_scores``, the
portfolio package's lake-backed risk model, an in-process vendor for backtests) without
touching the loop, the DAG or the backtest.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

import pandas as pd

from pipelines.lake import Lake
from pipelines.lake.interface import Store
from pipelines.pit.snapshot import MarketSnapshot
from pipelines.portfolio.risk_model import RiskModel


class ScoreSource(Protocol):
    """Alpha scores for a session's decision."""

    def scores(self, store: Store, day: dt.date, snapshot: MarketSnapshot) -> pd.DataFrame:
        """Columns ``security_id``, ``score`` (higher = more attractive), ``model_id``;
        one row per security, knowable at the day's cutoff."""
        ...


class RiskModelSource(Protocol):
    """The factor risk model as of a session's close."""

    def risk_model(self, store: Store, day: dt.date, snapshot: MarketSnapshot) -> RiskModel:
        """``Σ = B F Bᵀ + D`` for the securities of ``snapshot.universe`` (or a subset)."""
        ...


class Ingestor(Protocol):
    """Brings a session's vendor data into the lake (a no-op when already loaded)."""

    def ingest(self, lake: Lake, day: dt.date) -> dict[str, int]:
        """Feed name → rows loaded for ``day``."""
        ...
