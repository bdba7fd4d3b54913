"""The backtest's lake tables: one summary row per run, one equity row per run and session."""

from __future__ import annotations

import pyarrow as pa

from pipelines.lake.spec import TableSpec, column

BACKTEST_RUNS = TableSpec(
    name="backtest_runs",
    description="One row per backtest run: its config, range and performance metrics.",
    key=("run_id",),
    fields=(
        column("run_id", pa.string(), False, "portfolio id of the run: bt-<config hash>-r<n>"),
        column("config_hash", pa.string(), False),
        column("config", pa.string(), False, "JSON of the daily config"),
        column("start", pa.date32(), False),
        column("end", pa.date32(), False),
        column("sessions", pa.int64(), False),
        column("metrics", pa.string(), False, "JSON of the metrics"),
        column("sharpe", pa.float64()),
        column("annual_return", pa.float64(), doc="arithmetic: 252 × mean daily return"),
        column("cagr", pa.float64(), doc="geometric: (NAV_T / NAV_0)^(252 / T) − 1"),
        column("annual_vol", pa.float64()),
        column("max_drawdown", pa.float64()),
        column("mean_ic", pa.float64()),
        column("result_hash", pa.string(), False, "sha256 of the equity curve and metrics"),
    ),
    valid_time_meaning="last session of the run",
)

BACKTEST_DAILY = TableSpec(
    name="backtest_daily",
    description="Equity curve of a backtest run: one row per run and session.",
    key=("run_id",),
    fields=(
        column("run_id", pa.string(), False),
        column("nav", pa.float64(), False),
        column("ret", pa.float64(), doc="daily return of the NAV"),
        column("pnl", pa.float64()),
        column("cost", pa.float64()),
        column("turnover", pa.float64(), doc="traded notional / NAV"),
        column("gross", pa.float64()),
        column("ic", pa.float64()),
        column("model_id", pa.string(), doc="the model that scored the session (or scorer)"),
    ),
    valid_time_meaning="session",
)

__all__ = ["BACKTEST_DAILY", "BACKTEST_RUNS"]
