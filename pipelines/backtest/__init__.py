"""Backtests: the daily loop's stage functions run session by session, in process.

``run_backtest(lake, start, end, config)`` → :class:`BacktestResult` (equity curve,
metrics, result hash, HTML report); CLI ``alphafactory backtest``.
"""

from pipelines.backtest.metrics import Metrics, compute_metrics
from pipelines.backtest.run import BacktestResult, run_backtest

__all__ = ["BacktestResult", "Metrics", "compute_metrics", "run_backtest"]
