"""``run_backtest``: the daily loop's stage functions, session after session, in process.

Each session runs :func:`pipelines.daily.run_day` exactly as the DAG's tasks would, with
three differences that make it a simulation rather than a replay of the past:

* the lake already holds the history; every read is as of the session's cutoff, so a
  session sees only what had been published by then (the bitemporal guarantee);
* the paper broker (:class:`~pipelines.backtest.broker.InMemoryPaperBroker`) fills from
  prices as known at the current session's cutoff, so an order for session ``D+1`` fills
  only when the loop reaches ``D+1``;
* every timestamp comes from the simulated clock (the session's cutoff), never the wall
  clock, so the same config over the same data gives the same numbers, bit for bit.

A run's id is ``bt-<hash of config and range>-r<n>``: re-running adds a new run (``r2``)
whose results must equal the first's (``result_hash``). Results go to the lake
(``backtest_runs``, ``backtest_daily``) and to an HTML report under the lake root
(``<root>/reports/backtest-<run id>.html``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import pyarrow.compute as pc

from pipelines.backtest.broker import CachedPrices, InMemoryPaperBroker
from pipelines.backtest.metrics import Metrics, compute_metrics, daily_frame
from pipelines.daily.config import ApprovalPolicy, DailyConfig
from pipelines.daily.loop import run_day
from pipelines.daily.protocols import RiskModelSource, ScoreSource
from pipelines.errors import ConfigurationError
from pipelines.execution import LakePriceSource
from pipelines.lake import Lake
from pipelines.lake.maintenance import maintain
from pipelines.timeline import ALL_DATES, LATEST, decision_cutoff, trading_calendar

Progress = Callable[[int, int, dt.date], None]
#: Tables the loop appends to every session (compacted during long runs).
LOOP_TABLES = (
    "orders",
    "order_events",
    "fills",
    "positions",
    "cash",
    "reconciliation",
    "tca",
    "execution_audit",
    "daily_book",
    "stage_state",
)


@dataclass(frozen=True)
class BacktestResult:
    """A finished run: its id, equity curve, metrics, the hash of both, and the report."""

    run_id: str
    start: dt.date
    end: dt.date
    daily: pd.DataFrame
    metrics: Metrics
    result_hash: str
    report_path: str | None


def config_hash(config: DailyConfig, start: dt.date, end: dt.date) -> str:
    """Stable hash of the config (minus the portfolio id) and the date range."""
    payload = config.model_dump(mode="json")
    payload.pop("portfolio_id", None)
    text = json.dumps({"config": payload, "start": str(start), "end": str(end)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _next_run_number(lake: Lake, chash: str) -> int:
    if lake.table("backtest_runs") is None:
        return 1
    runs = lake.as_of(
        "backtest_runs",
        known_at=LATEST,
        valid_at=ALL_DATES,
        columns=["run_id", "config_hash"],
        filter=pc.field("config_hash") == chash,
    )
    return runs.num_rows + 1


def result_hash(daily: pd.DataFrame, metrics: Metrics) -> str:
    """sha256 over the exact floats of the equity curve and the metrics."""
    h = hashlib.sha256()
    for col in ("date", "nav", "ret", "pnl", "cost", "turnover", "gross", "ic"):
        h.update(repr(daily[col].tolist()).encode())
    h.update(repr(sorted(metrics.to_dict().items())).encode())
    return h.hexdigest()


def run_backtest(
    lake: Lake,
    start: dt.date,
    end: dt.date,
    config: DailyConfig | None = None,
    *,
    scores: ScoreSource | None = None,
    risk: RiskModelSource | None = None,
    progress: Progress | None = None,
    write_report: bool = True,
    compact_every: int = 20,
) -> BacktestResult:
    """Backtest ``config`` over the sessions in ``[start, end]`` (module docstring).

    Every ``compact_every`` sessions the tables the loop appends to are compacted: each
    stage commits small files, and reads slow down with their number.
    """
    base = config or DailyConfig()
    days = trading_calendar().sessions(start, end)
    if not days:
        raise ConfigurationError(f"no {start}..{end} sessions to backtest")
    chash = config_hash(base, start, end)
    run_id = f"bt-{chash}-r{_next_run_number(lake, chash)}"
    cfg = base.model_copy(
        update={"portfolio_id": run_id, "approval": ApprovalPolicy(auto_approve=True)}
    )
    _fresh_optimizers()
    prices = CachedPrices(LakePriceSource(lake, known_at=decision_cutoff(days[0])))
    current = {"day": days[0]}
    broker = InMemoryPaperBroker(
        prices,
        initial_cash=cfg.initial_capital,
        clock=lambda: decision_cutoff(current["day"]),
        # Execution ids unique to the run (the lake keys fills by them), yet reproducible.
        id_base=int(hashlib.sha256(run_id.encode()).hexdigest()[:7], 16) * 1_000_000,
    )
    rows: list[dict[str, object]] = []
    for i, day in enumerate(days):
        current["day"] = day
        prices.known_at = decision_cutoff(day)
        out = run_day(lake, day, cfg, broker, scores=scores, risk=risk, write_report=False)
        book = dict(out.outputs["reconcile"]["book"])
        book["date"] = day
        rows.append(book)
        if compact_every and (i + 1) % compact_every == 0:
            maintain(lake, [t for t in LOOP_TABLES if lake.table(t) is not None], zorder=False)
        if progress is not None:
            progress(i + 1, len(days), day)
    daily = daily_frame(rows, cfg.initial_capital)
    metrics = compute_metrics(daily, cfg.initial_capital)
    digest = result_hash(daily, metrics)
    _store(lake, run_id, chash, cfg, days, daily, metrics, digest)
    report_path = None
    if write_report:
        from pipelines.backtest.report import write_backtest_report

        report_path = write_backtest_report(
            f"{lake.location.root}/reports/backtest-{run_id}.html",
            run_id,
            cfg,
            daily,
            metrics,
            lake.location.options(),
        )
    return BacktestResult(run_id, days[0], days[-1], daily, metrics, digest, report_path)


def _fresh_optimizers() -> None:
    """Forget compiled optimizers: a cached problem carries its last solve into the next
    (warm start), so a run must start from a fresh compile to be reproducible bit for bit."""
    from pipelines.portfolio import optimizer

    optimizer._CACHE.clear()


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _store(
    lake: Lake,
    run_id: str,
    chash: str,
    cfg: DailyConfig,
    days: list[dt.date],
    daily: pd.DataFrame,
    metrics: Metrics,
    digest: str,
) -> None:
    known = decision_cutoff(days[-1])
    curve = daily.assign(run_id=run_id, valid_date=daily["date"]).drop(columns=["date"])
    lake.write("backtest_daily", curve, known_at=known, batch_id=f"backtest_daily:{run_id}")
    summary = pd.DataFrame(
        [
            {
                "run_id": run_id,
                "config_hash": chash,
                "config": json.dumps(cfg.model_dump(mode="json"), sort_keys=True),
                "start": days[0],
                "end": days[-1],
                "sessions": len(days),
                "metrics": json.dumps(metrics.to_dict(), sort_keys=True),
                "sharpe": _finite(metrics.sharpe),
                "annual_return": _finite(metrics.annual_return),
                "annual_vol": _finite(metrics.annual_vol),
                "max_drawdown": _finite(metrics.max_drawdown),
                "mean_ic": _finite(metrics.mean_ic),
                "result_hash": digest,
            }
        ]
    )
    lake.write(
        "backtest_runs",
        summary,
        known_at=known,
        valid_date=days[-1],
        batch_id=f"backtest_runs:{run_id}",
    )
