"""``run_day``: one session of the daily loop, every stage in order, in process.

The backtest calls it day after day; the ``portfolio_rebalance`` DAG calls the same stage
functions one per task (:mod:`pipelines.daily.stages`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipelines.daily import stages
from pipelines.daily.config import DailyConfig
from pipelines.daily.protocols import Ingestor, RiskModelSource, ScoreSource
from pipelines.execution import Broker
from pipelines.lake import Lake
from pipelines.lake.interface import Store
from pipelines.portfolio.styles import SnapshotRiskModel

log = logging.getLogger(__name__)

STAGE_ORDER = (
    "ingest",
    "research",
    "risk_model",
    "optimize",
    "pretrade",
    "approve",
    "execute",
    "reconcile",
    "report",
)


@dataclass
class DayResult:
    """What each stage of one session returned, and how long it took (seconds)."""

    day: dt.date
    outputs: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    #: Why the session decided nothing new (its prices were not known at its cutoff), or None.
    skipped: str | None = None


def run_day(
    lake: Lake,
    day: dt.date,
    config: DailyConfig,
    broker: Broker,
    *,
    scores: ScoreSource | None = None,
    risk: RiskModelSource | None = None,
    ingestor: Ingestor | None = None,
    decision: str | None = None,
    write_report: bool = True,
    clock: Callable[[], dt.datetime] | None = None,
    store: Store | None = None,
) -> DayResult:
    """Run every stage for ``day`` (see :mod:`pipelines.daily.stages`) and return their outputs.

    ``decision`` is the PM's answer (``approved``/``rejected``); None applies the
    config's approval policy. ``store`` (default: ``lake``) is where the stages read and
    write (a backtest passes its write buffer over ``lake``). Re-running a day is safe: orders are reused, fills and
    positions are stored once, the book row is rewritten only if it changed.

    A session whose prices were not known at its cutoff (a late or missing vendor folder)
    is skipped, not failed: after ``ingest`` only ``reconcile`` (the book at the last
    closes known, listed as stale) and ``report`` run, one WARNING line says why, and
    :attr:`DayResult.skipped` holds the reason.
    """
    ctx = stages.DayContext(
        lake=lake,
        day=day,
        config=config,
        broker=broker,
        scores_source=scores or stages.score_source(config),
        risk_source=risk or SnapshotRiskModel(),
        ingestor=ingestor or stages.NoIngest(),
        clock=clock,
        buffer=store,
    )
    result = DayResult(day)
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("ingest", lambda: stages.ingest(ctx)),
        ("research", lambda: stages.research(ctx)),
        ("risk_model", lambda: stages.risk_model(ctx)),
        ("optimize", lambda: stages.optimize(ctx)),
        ("pretrade", lambda: stages.pretrade(ctx)),
        ("approve", lambda: stages.approve(ctx, decision)),
        ("execute", lambda: stages.execute(ctx)),
        ("reconcile", lambda: stages.reconcile(ctx)),
    ]
    if write_report:
        steps.append(("report", lambda: stages.report(ctx)))
    decides = {"research", "risk_model", "optimize", "pretrade", "approve", "execute"}
    for name, step in steps:
        if name in decides and "snapshot" not in result.seconds:
            # The session's point-in-time snapshot loads on the first question after ingest
            # (skip_reason asks it): timed apart, not hidden between two stages.
            started = time.perf_counter()
            ctx.snapshot  # noqa: B018 (loads and caches it)
            result.seconds["snapshot"] = time.perf_counter() - started
        if name in decides and ctx.skip_reason is not None:
            if result.skipped is None:
                result.skipped = ctx.skip_reason
                log.warning("%s: session skipped: %s", day, ctx.skip_reason)
            result.outputs[name] = {"skipped": ctx.skip_reason}
            continue
        started = time.perf_counter()
        result.outputs[name] = step()
        result.seconds[name] = time.perf_counter() - started
    return result
