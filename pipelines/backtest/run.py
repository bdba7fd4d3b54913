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

With ``buffer_sessions = K >= 2`` the stages run against a
:class:`~pipelines.lake.buffered.BufferedStore`: their writes stay in memory and are
committed to the lake every ``K`` sessions and at the end (reads see them at once, exactly
as the lake would answer). ``K <= 1`` runs against the lake directly, as the DAG does.
Every ``checkpoint_every`` sessions (a flush first, when buffered) the run records a
checkpoint (the equity rows since the previous checkpoint and the paper broker's state) in
``stage_state`` under the run's id, so ``resume=True`` continues an interrupted run from its
last checkpoint with the same run id (its equity rows gathered from all its checkpoints);
only the sessions after it are computed again.

With ``config.retrain`` set (``monthly``/``weekly``) the run retrains the research model
on the walk-forward schedule and scores each session with the model current then
(:mod:`pipelines.backtest.retrain`). Every run records which model scored each session
(``backtest_daily.model_id``: a model id, or a builtin scorer's name).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow.compute as pc

from pipelines.backtest.broker import CachedPrices, InMemoryPaperBroker
from pipelines.backtest.gc_tuning import fewer_collections
from pipelines.backtest.metrics import Metrics, compute_metrics, daily_frame
from pipelines.backtest.retrain import Retrain, WalkForwardScores, research_config
from pipelines.daily.config import ApprovalPolicy, DailyConfig
from pipelines.daily.loop import run_day
from pipelines.daily.protocols import RiskModelSource, ScoreSource
from pipelines.errors import ConfigurationError
from pipelines.execution import LakePriceSource
from pipelines.lake import Lake
from pipelines.lake.buffered import BufferedStore
from pipelines.lake.interface import Store
from pipelines.lake.maintenance import maintain
from pipelines.lake.stage_state import TABLE as STAGE_STATE
from pipelines.lake.stage_state import StageState
from pipelines.lake.stage_state import history as stage_history
from pipelines.timeline import ALL_DATES, LATEST, decision_cutoff, trading_calendar

log = logging.getLogger(__name__)

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
#: Market data the loop only reads: scanned once per run and filtered in memory.
READ_ONLY_TABLES = ("prices", "security_master", "corporate_actions", "fundamentals", "sentiment")
#: Sessions between two flushes of the write buffer (and checkpoints) by default.
DEFAULT_BUFFER_SESSIONS = 20
#: Sessions between two checkpoints (and fresh optimizer compiles) by default.
DEFAULT_CHECKPOINT_EVERY = 20
#: The ``stage_state`` name of a run's checkpoint (portfolio id = the run id).
CHECKPOINT = "backtest_checkpoint"


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
    #: Seconds spent per daily stage (summed over sessions), plus ``flush`` and ``compact``.
    seconds: dict[str, float] = field(default_factory=dict)
    #: The session the run resumed after (None: it ran from its first session).
    resumed_after: dt.date | None = None
    #: Sessions that decided nothing new, and why (their prices were not known at their
    #: cutoff: a late or missing vendor folder); the run went on with stale marks.
    skipped: dict[dt.date, str] = field(default_factory=dict)
    #: The walk-forward retrains this process made (``config.retrain``), in order.
    retrains: list[Retrain] = field(default_factory=list)


def config_hash(config: DailyConfig, start: dt.date, end: dt.date) -> str:
    """Stable hash of the config (minus the portfolio id) and the date range."""
    payload = config.model_dump(mode="json")
    payload.pop("portfolio_id", None)
    # Fields added later count only when set, so the run ids of earlier configs stay.
    for name, default in (("retrain", "none"), ("retrain_research", {})):
        if payload.get(name) == default:
            payload.pop(name, None)
    text = json.dumps({"config": payload, "start": str(start), "end": str(end)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _run_number(run_id: str) -> int:
    match = re.search(r"-r(\d+)$", run_id)
    return int(match.group(1)) if match else 0


def _runs(lake: Lake, chash: str) -> tuple[set[int], set[int]]:
    """Run numbers of config ``chash``: the finished ones, and those with a checkpoint."""
    finished: set[int] = set()
    if lake.table("backtest_runs") is not None:
        runs = lake.as_of(
            "backtest_runs",
            known_at=LATEST,
            valid_at=ALL_DATES,
            columns=["run_id", "config_hash"],
            filter=pc.field("config_hash") == chash,
        )
        finished = {_run_number(r) for r in runs.column("run_id").to_pylist()}
    started: set[int] = set()
    if lake.table(STAGE_STATE) is not None:
        marks = lake.as_of(
            STAGE_STATE,
            known_at=LATEST,
            valid_at=ALL_DATES,
            columns=["portfolio_id", "name"],
            filter=pc.field("name") == CHECKPOINT,
        )
        prefix = f"bt-{chash}-r"
        started = {
            _run_number(p) for p in marks.column("portfolio_id").to_pylist() if p.startswith(prefix)
        }
    return finished, started


def _checkpoint(lake: Lake, run_id: str) -> dict[str, Any] | None:
    """The run's last checkpoint (written after its last flush), or None; its ``rows`` are
    every equity row of sessions ``0..index``, gathered from all the run's checkpoints (each
    records the rows from its ``rows_from``; one without it, all of them)."""
    found = stage_history(lake, run_id, CHECKPOINT)
    if not found:
        return None
    rows: list[dict[str, object]] = []
    for _, payload in found:
        rows[int(payload.get("rows_from", 0)) :] = payload["rows"]
    last: dict[str, Any] = dict(found[-1][1])
    if len(rows) != int(last["index"]) + 1:
        raise ConfigurationError(
            f"{run_id}: its checkpoints hold {len(rows)} equity rows, not the "
            f"{int(last['index']) + 1} of sessions up to {last['session']}"
        )
    last["rows"] = rows
    return last


def _save_checkpoint(
    lake: Lake,
    run_id: str,
    day: dt.date,
    index: int,
    every: int,
    rows: list[dict[str, object]],
    rows_from: int,
    state: Any,
    skipped: dict[dt.date, str],
) -> None:
    """Record that sessions ``0..index`` of the run are in the lake: the equity rows of
    sessions ``rows_from..index`` (the earlier ones are in the run's earlier checkpoints:
    all of them at every checkpoint made the payloads, and the run, quadratic in its
    length), the paper broker's account, the skipped sessions and the checkpoint schedule."""
    payload = {
        "session": day,
        "index": index,
        "every": every,
        "rows": rows[rows_from:],
        "rows_from": rows_from,
        "broker": state,
        "skipped": skipped,
    }
    StageState(lake, run_id, day, clock=lambda: decision_cutoff(day)).put(CHECKPOINT, payload)


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
    buffer_sessions: int = DEFAULT_BUFFER_SESSIONS,
    checkpoint_every: int | None = None,
    resume: bool = False,
    retrain_workers: int | None = None,
) -> BacktestResult:
    """Backtest ``config`` over the sessions in ``[start, end]`` (module docstring).

    ``buffer_sessions`` (K): the stages' writes are committed to the lake every K sessions,
    at every checkpoint and at the end; K <= 1 writes through to the lake at every stage.
    K changes only the speed, never the numbers.

    ``checkpoint_every`` (C, default 20; 0 = never): every C sessions, counted from the
    first, the run records a checkpoint and the next session starts with a freshly compiled
    optimizer (warm re-solves carry solver state a checkpoint cannot hold), so a run resumed
    from a checkpoint gives the same numbers as one that was not interrupted, and buffered
    and unbuffered runs with the same C give the same numbers. ``resume``: continue the
    latest unfinished run of this config and range from its last checkpoint (a new run
    when there is none); it keeps the run's C.

    ``retrain_workers``: processes that fit the walk-forward retrains ahead of the
    sessions (:class:`~pipelines.backtest.retrain.WalkForwardScores`; default: the
    ``ALPHAFACTORY_BACKTEST_RETRAIN_WORKERS`` setting, else one on two or more cores,
    0: in this process). Like K, it changes only the speed.

    Written through, the tables the loop appends to are compacted every ``compact_every``
    sessions: each commit adds small files, and reads slow down with their number.
    Buffered, they are maintained once, after the last flush (see :func:`_compact`).
    """
    base = config or DailyConfig()
    days = trading_calendar().sessions(start, end)
    if not days:
        raise ConfigurationError(f"no {start}..{end} sessions to backtest")
    chash = config_hash(base, start, end)
    buffered = buffer_sessions >= 2
    every = DEFAULT_CHECKPOINT_EVERY if checkpoint_every is None else checkpoint_every
    finished, started = _runs(lake, chash)
    unfinished = started - finished
    number = max(unfinished) if resume and unfinished else max(finished | started, default=0) + 1
    run_id = f"bt-{chash}-r{number}"
    checkpoint = _checkpoint(lake, run_id) if resume and unfinished else None
    cfg = base.model_copy(
        update={"portfolio_id": run_id, "approval": ApprovalPolicy(auto_approve=True)}
    )
    retrainer: WalkForwardScores | None = None
    if cfg.retrain != "none":
        if scores is not None:
            raise ConfigurationError("a backtest retrains (config.retrain) or is given scores")
        from pipelines.daily.stages import score_source

        retrainer = WalkForwardScores(
            lake,
            days,
            cfg.retrain,
            research_config(cfg.retrain_research),
            score_source(cfg),
            workers=retrain_workers,
        )
        scores = retrainer
    _fresh_optimizers()
    buffer = BufferedStore(lake, cached_tables=READ_ONLY_TABLES) if buffered else None
    store: Store = lake if buffer is None else buffer
    prices = CachedPrices(LakePriceSource(store, known_at=decision_cutoff(days[0])))
    # The session's cutoff, read at every order the broker stamps: computed once a session.
    current = {"cutoff": decision_cutoff(days[0])}
    broker = InMemoryPaperBroker(
        prices,
        initial_cash=cfg.initial_capital,
        clock=lambda: current["cutoff"],
        # Execution ids unique to the run (the lake keys fills by them), yet reproducible.
        id_base=int(hashlib.sha256(run_id.encode()).hexdigest()[:7], 16) * 1_000_000,
    )
    rows: list[dict[str, object]] = []
    skipped: dict[dt.date, str] = {}
    first = 0
    # The first equity row the next checkpoint records (the earlier ones are recorded).
    unrecorded = 0
    resumed_after = None
    if checkpoint is not None:
        # The schedule the run started with: its segments must end where they did.
        every = int(checkpoint["every"])
        rows = list(checkpoint["rows"])
        skipped = dict(checkpoint.get("skipped") or {})
        broker.restore_account(checkpoint["broker"])
        first = int(checkpoint["index"]) + 1
        unrecorded = first
        resumed_after = checkpoint["session"]
    seconds: dict[str, float] = {}
    since_compact = 0
    if retrainer is not None and first < len(days):
        retrainer.prefetch(days[first])
    with fewer_collections():
        for i in range(first, len(days)):
            day = days[i]
            current["cutoff"] = prices.known_at = decision_cutoff(day)
            out = run_day(
                lake,
                day,
                cfg,
                broker,
                scores=scores,
                risk=risk,
                write_report=False,
                store=buffer,
            )
            if out.skipped is not None:
                # run_day logged it; the run goes on and names the session in its result
                skipped[day] = out.skipped
            for stage, spent in out.seconds.items():
                seconds[stage] = seconds.get(stage, 0.0) + spent
            book = dict(out.outputs["reconcile"]["book"])
            book["date"] = day
            # Which model scored the session (its id, or the builtin scorer's name).
            book["model_id"] = ",".join(out.outputs.get("research", {}).get("model_ids", []))
            rows.append(book)
            since_compact += 1
            began = time.perf_counter()
            last = i == len(days) - 1
            # The schedule counts from the run's first session, so a resumed run keeps it.
            checkpoint_now = bool(every) and ((i + 1) % every == 0 or last)
            flushed = buffer is not None and (
                (i + 1) % buffer_sessions == 0 or checkpoint_now or last
            )
            if buffer is not None and flushed:
                buffer.flush()
            if checkpoint_now:
                # Before the checkpoint, so a resumed run starts from the very state the
                # uninterrupted run goes on with.
                broker.forget_settled(day)
                _save_checkpoint(
                    lake, run_id, day, i, every, rows, unrecorded, broker.account_state(), skipped
                )
                unrecorded = len(rows)
                # The next segment solves with a freshly compiled optimizer, as a run resumed
                # from this checkpoint does: warm re-solves carry solver state (see
                # _fresh_optimizers) that a checkpoint cannot hold.
                _fresh_optimizers()
            if flushed or checkpoint_now:
                seconds["flush"] = seconds.get("flush", 0.0) + time.perf_counter() - began
            if compact_every and (last if buffered else since_compact >= compact_every):
                began = time.perf_counter()
                _compact(lake, buffered)
                seconds["compact"] = seconds.get("compact", 0.0) + time.perf_counter() - began
                since_compact = 0
            if progress is not None:
                progress(i + 1, len(days), day)
    if retrainer is not None:
        retrainer.close()  # the worker's last fits are all handed over
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
            retrains=list(retrainer.retrains) if retrainer is not None else None,
        )
    if skipped:
        log.warning(
            "backtest %s: %d session(s) skipped: %s",
            run_id,
            len(skipped),
            "; ".join(f"{d}: {why}" for d, why in sorted(skipped.items())),
        )
    return BacktestResult(
        run_id,
        days[0],
        days[-1],
        daily,
        metrics,
        digest,
        report_path,
        seconds,
        resumed_after,
        skipped,
        list(retrainer.retrains) if retrainer is not None else [],
    )


def _compact(lake: Lake, buffered: bool) -> None:
    """Maintain the loop's tables. Buffered, each flush committed one date-ordered file per
    table: checkpoint and clean the log only — compacting rewrote every table whole each
    time (0.14 s a session by the 400th session of a 500-name run, growing with the run)
    and merged the files' dates, so reads of a few days could no longer skip files. And
    only once, at the end of the run: Delta checkpoints the log itself every
    ``lake.checkpoint_interval`` commits (a flush is one commit per table), while a
    checkpoint and a vacuum at every flush rewrote the whole log (every batch id the run
    committed) and listed every file, more each time. Written through (a commit per
    stage), the small files are compacted every ``compact_every`` sessions."""
    tables = [t for t in LOOP_TABLES if lake.table(t) is not None]
    maintain(lake, tables, zorder=False, compact=not buffered)


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
                "cagr": _finite(metrics.cagr),
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
