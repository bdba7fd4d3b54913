"""Small simulated lakes for research tests (the vendor simulator's rows, written directly)."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path

import pandas as pd

from pipelines.lake import Lake
from pipelines.research.stages import ResearchConfig
from pipelines.testing.lakes import silver_frames, write_silver
from pipelines.vendors.config import MarketConfig
from pipelines.vendors.market import Market, generate_market

#: A cheap LightGBM and a short walk-forward: tests check behaviour, not model quality.
# one thread: on a shared 2-core machine OpenMP spinning makes 2 threads far slower
SMALL_PARAMS = {"num_leaves": 7, "min_data_in_leaf": 40, "learning_rate": 0.1, "num_threads": 1}
SMALL_CONFIG = ResearchConfig(
    train_sessions=200,
    min_train_sessions=100,
    valid_sessions=40,
    num_boost_round=60,
    early_stopping_rounds=10,
    params=SMALL_PARAMS,
)


@lru_cache(maxsize=4)
def market(
    universe: int, start: dt.date, end: dt.date, strength: float = 0.05, seed: int = 11
) -> Market:
    """A simulated market (cached: generation is the slow part)."""
    cfg = MarketConfig(
        seed=seed, universe_size=universe, start=start, end=end, signal_strength=strength
    )
    return generate_market(cfg)


@lru_cache(maxsize=4)
def market_frames(
    universe: int, start: dt.date, end: dt.date, strength: float = 0.05, seed: int = 11
) -> dict[str, pd.DataFrame]:
    """Silver frames of :func:`market` (what ingestion would load)."""
    return silver_frames(market(universe, start, end, strength, seed))


def make_lake(path: Path, frames: dict[str, pd.DataFrame]) -> Lake:
    lake = Lake(str(path))
    write_silver(lake, frames)
    return lake
