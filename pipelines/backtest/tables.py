"""The backtest's lake tables: one summary row per run, one equity row per run and session."""

from __future__ import annotations

import pyarrow as pa

from pipelines.lake import TableSpec, register


def _f(name: str, type_: pa.DataType, nullable: bool = True, doc: str = "") -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"doc": doc} if doc else None)


BACKTEST_RUNS = register(
    TableSpec(
        name="backtest_runs",
        description="One row per backtest run: its config, range and performance metrics.",
        key=("run_id",),
        fields=(
            _f("run_id", pa.string(), False, "portfolio id of the run: bt-<config hash>-r<n>"),
            _f("config_hash", pa.string(), False),
            _f("config", pa.string(), False, "JSON of the daily config"),
            _f("start", pa.date32(), False),
            _f("end", pa.date32(), False),
            _f("sessions", pa.int64(), False),
            _f("metrics", pa.string(), False, "JSON of the metrics"),
            _f("sharpe", pa.float64()),
            _f("annual_return", pa.float64()),
            _f("annual_vol", pa.float64()),
            _f("max_drawdown", pa.float64()),
            _f("mean_ic", pa.float64()),
            _f("result_hash", pa.string(), False, "sha256 of the equity curve and metrics"),
        ),
        valid_time_meaning="last session of the run",
    )
)

BACKTEST_DAILY = register(
    TableSpec(
        name="backtest_daily",
        description="Equity curve of a backtest run: one row per run and session.",
        key=("run_id",),
        fields=(
            _f("run_id", pa.string(), False),
            _f("nav", pa.float64(), False),
            _f("ret", pa.float64(), doc="daily return of the NAV"),
            _f("pnl", pa.float64()),
            _f("cost", pa.float64()),
            _f("turnover", pa.float64(), doc="traded notional / NAV"),
            _f("gross", pa.float64()),
            _f("ic", pa.float64()),
        ),
        valid_time_meaning="session",
    )
)

__all__ = ["BACKTEST_DAILY", "BACKTEST_RUNS"]
