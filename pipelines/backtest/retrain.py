"""Walk-forward retrains inside a backtest: :class:`WalkForwardScores`, a score source.

With ``DailyConfig.retrain`` set (``alphafactory backtest --retrain monthly``), the run
retrains the research model on the walk-forward schedule: on its first session and on the
first session of each month (``monthly``) or ISO week (``weekly``, the ``model_retrain``
DAG's cadence) of the exchange calendar. Each retrain is the live retrain's training code,
:func:`pipelines.research.stages.fit_at`, on the research history as known at that
session's cutoff, and nothing is written to the model registry (a backtest's models are
not candidates for the live champion). The model fit at session ``R`` scores ``R`` and
every later session up to the next retrain (as :func:`pipelines.research.stages.score_sessions`
does: each session's features as it knew them at its cutoff), so no score depends on
anything published after its own session's cutoff. The fit and the scores come from one
history read through the block's last session
(:func:`pipelines.research.stages.fit_and_score`), each row of which is as its own
session knew it. Each session's scores carry the model's id,
which the backtest records per session (``backtest_daily.model_id``).

Which model scores a session depends only on the schedule and the lake, never on what
the process did before: a run resumed from a checkpoint fits the model of the resumed
session's retrain again (the fit is deterministic) and gets the same scores. A retrain
that cannot fit (too little history or no labelled rows before it, every feature skipped)
leaves its sessions
to the config's own scorer, ``fallback`` (logged, listed in :attr:`retrains`).

The retrains read the research panel's input tables (prices, corporate actions, security
master, fundamentals, sentiment) from one in-memory scan per run (:class:`ScannedInputs`):
a run only reads them (the buffer's ``READ_ONLY_TABLES``), and every retrain's panel
queries filter the same rows by knowledge time, so scanning the Delta files again for each
of the ~120 monthly retrains of a 10-year run bought nothing.

A retrain depends only on the lake's input tables and the schedule, never on the
portfolio, so the run fits its blocks ahead in a worker process (``workers``, default one
on a machine with two or more cores; ``ALPHAFACTORY_BACKTEST_RETRAIN_WORKERS`` or
``run_backtest(retrain_workers=...)`` to choose): while the run's own process trades the
sessions of one block, the worker fits the next ones (:data:`AHEAD` blocks ahead), so on
two cores a retrain costs the run only the time it waits for a fit that is not ready. The
worker calls the same :func:`fit_and_score` on the same input tables (its own
:class:`ScannedInputs` of the lake), so the models and scores are those of a fit in the
run's process, bit for bit (LightGBM runs its fixed ``num_threads``, deterministic). A
worker that cannot start or dies (a daemonic Celery child, an OOM kill) is logged and the
run fits in its own process from then on.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import functools
import json
import logging
import multiprocessing
import os
import sys
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from models.base import ModelError
from models.record import ModelRecord
from pipelines.backtest.gc_tuning import fewer_collections
from pipelines.config import get_settings
from pipelines.daily.protocols import ScoreSource
from pipelines.errors import ConfigurationError
from pipelines.lake import Lake
from pipelines.lake.interface import Store
from pipelines.pit.lake_panel import INPUT_TABLES
from pipelines.pit.snapshot import MarketSnapshot
from pipelines.research.carry import FitCarry
from pipelines.research.stages import (
    DEFAULT_CONFIG,
    InsufficientHistoryError,
    NoFeaturesError,
    ResearchConfig,
    fit_and_score,
)
from pipelines.timeline import OutsideCalendarError, trading_calendar

log = logging.getLogger(__name__)

Schedule = Literal["monthly", "weekly"]
#: ResearchConfig fields given as lists in YAML/JSON but held as tuples.
_TUPLE_FIELDS = ("features", "label_horizons", "label_kinds", "ic_horizons")


def retrain_days(days: Sequence[dt.date], schedule: Schedule) -> list[dt.date]:
    """The sessions of ``days`` a model is fit on: the first one, and every session that is
    the first of its month (``monthly``) or ISO week (``weekly``) in the exchange calendar
    (a holiday on the 1st moves the retrain to the next session)."""
    if schedule not in ("monthly", "weekly"):
        raise ConfigurationError(f"retrain schedule {schedule!r}: expected monthly or weekly")
    cal = trading_calendar()
    out: list[dt.date] = []
    for i, day in enumerate(days):
        if i == 0 or day <= cal.first:
            out.append(day)
            continue
        prev = cal.offset(day, -1)
        if schedule == "monthly":
            new = (prev.year, prev.month) != (day.year, day.month)
        else:
            new = prev.isocalendar()[:2] != day.isocalendar()[:2]
        if new:
            out.append(day)
    return out


#: LightGBM parameters of every backtest retrain unless ``retrain_research`` sets them:
#: one thread. A run's fits share the machine with the run's own process (the worker fits
#: ahead while the run trades; on two cores each has one), and a fit's second thread took
#: its cycles from the run's sessions: on this machine kind a one-thread fit used ~12 %
#: less CPU than a two-thread one, with the same trees and scores (col-wise histograms and
#: ``deterministic``: each feature's bins are summed by one thread in row order; checked
#: in tests/backtest/test_retrain.py). Fixed rather than taken from the core count, so a
#: run's model ids (the thread count is a recorded parameter) and result hash are the
#: same on every machine.
BACKTEST_LGBM_PARAMS: Mapping[str, Any] = {"num_threads": 1}


def research_config(overrides: Mapping[str, Any]) -> ResearchConfig:
    """The research config of the backtest's retrains: the defaults with ``overrides``
    (``DailyConfig.retrain_research``) applied, LightGBM on one thread unless they set
    ``params.num_threads`` (:data:`BACKTEST_LGBM_PARAMS`); an unknown field is a
    ConfigurationError."""
    values: dict[str, Any] = {
        k: tuple(v) if k in _TUPLE_FIELDS and v is not None else v for k, v in overrides.items()
    }
    names = {f.name for f in dataclasses.fields(ResearchConfig)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigurationError(
            f"retrain_research: unknown research config fields {unknown} (known: {sorted(names)})"
        )
    config = dataclasses.replace(DEFAULT_CONFIG, **values)
    if config.model == "lgbm" and "num_threads" not in config.params:
        config = dataclasses.replace(config, params={**config.params, **BACKTEST_LGBM_PARAMS})
    return config


class ScannedInputs(Lake):
    """``lake`` with the research panel's input tables (:data:`INPUT_TABLES`) served from one
    in-memory scan each, taken on first use: for a reader that knows they do not change
    while it lives (a backtest run). Every other table and every write go to the lake."""

    def __init__(self, lake: Lake) -> None:
        super().__init__(
            lake.location.root,
            lake.location.options(),
            checkpoint_interval=lake.checkpoint_interval,
            retention_hours=lake.retention_hours,
            max_commit_retries=lake.max_commit_retries,
        )
        self._scans: dict[str, ds.Dataset] = {}
        #: per scanned table: the table and its rows' ``valid_date`` (int32 days) when
        #: they are in ascending order, else None (see :meth:`rows_between`)
        self._dates: dict[str, tuple[pa.Table, np.ndarray] | None] = {}
        #: what each fit on these inputs carries to the next (:func:`fit_block`)
        self.fit_carry = FitCarry()

    def dataset(
        self, name: str, *, prune: list[Any] | str | None = None, refresh: bool = True
    ) -> ds.Dataset:
        """The table as :meth:`Lake.dataset` gives it; an input table from its scan (every
        row: the readers filter by knowledge time themselves)."""
        if name not in INPUT_TABLES or prune is not None:
            return super().dataset(name, prune=prune, refresh=refresh)
        scan = self._scans.get(name)
        if scan is None:
            table = super().dataset(name).to_table()
            scan = self._scans[name] = ds.dataset(table)
            days = _ascending_days(table)
            self._dates[name] = None if days is None else (table, days)
        return scan

    def rows_between(self, name: str, start: dt.date, end: dt.date) -> ds.Dataset | None:
        """The scan's rows of input table ``name`` with ``valid_date`` in ``[start, end]``,
        in scan order: a zero-copy slice when the scan is in ``valid_date`` order (a lake
        written session by session), so a reader of a few years of a 10-year table filters
        only those (:func:`pipelines.pit.lake_panel._rows_between`); None otherwise."""
        if name not in INPUT_TABLES:
            return None
        self.dataset(name)
        sorted_ = self._dates.get(name)
        if sorted_ is None:
            return None
        table, days = sorted_
        lo = int(np.searchsorted(days, (start - _EPOCH).days, side="left"))
        hi = int(np.searchsorted(days, (end - _EPOCH).days, side="right"))
        return ds.dataset(table.slice(lo, hi - lo))

    def ex_date_prices(self) -> ds.Dataset | None:
        """The price rows on dividends' ex-dates
        (:class:`~pipelines.pit.lake_panel.ExDatePrices`), picked out of the scans once:
        every version of every ``prices`` row whose ``(security_id, valid_date)`` some
        version of a dividend in ``corporate_actions`` goes ex on, in scan order; None
        when the two tables' key types do not join."""
        return self._ex_prices

    @functools.cached_property
    def _ex_prices(self) -> ds.Dataset | None:
        return _ex_date_rows(self.dataset("prices"), self.dataset("corporate_actions"))


_EPOCH = dt.date(1970, 1, 1)


def _ex_date_rows(prices: ds.Dataset, actions: ds.Dataset) -> ds.Dataset | None:
    """:meth:`ScannedInputs.ex_date_prices` of these two scans."""
    keys = ["security_id", "valid_date"]
    if not set(keys) <= set(prices.schema.names) or not {*keys, "action_type"} <= set(
        actions.schema.names
    ):
        return None
    dividends = actions.to_table(columns=keys, filter=pc.field("action_type") == "dividend")
    table = prices.to_table()
    try:
        rows = table.append_column("_row", pa.array(np.arange(table.num_rows))).join(
            dividends.group_by(keys).aggregate([]), keys, join_type="left semi"
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    # the join's output order is its own (and its fields all nullable): the scan's back
    rows = rows.take(pc.sort_indices(rows, [("_row", "ascending")])).drop_columns(["_row"])
    return ds.dataset(rows.cast(table.schema))


def _ascending_days(table: pa.Table) -> np.ndarray | None:
    """``table``'s ``valid_date`` as int32 days when no row has a null one and they never
    decrease, else None."""
    if "valid_date" not in table.column_names:
        return None
    column = table.column("valid_date")
    if column.null_count or not pa.types.is_date32(column.type):
        return None
    days = np.asarray(column.cast(pa.int32()).to_numpy(), dtype=np.int32)
    return days if bool(np.all(days[1:] >= days[:-1])) else None


#: Blocks a worker fits ahead of the block being traded: with one, the worker would idle
#: from handing a fit over until the run reaches the next retrain.
AHEAD = 2


def default_workers(retrains: int) -> int:
    """Worker processes for a run with ``retrains`` retrains: the setting when given, else
    one when there is something to overlap (two or more retrains) and a second core to
    overlap it on, when this process may have children (not a daemonic one) and when a
    spawned child may import its main script (:func:`spawn_safe`)."""
    chosen = get_settings().backtest_retrain_workers
    if chosen is not None:
        return max(int(chosen), 0)
    if retrains < 2 or (os.cpu_count() or 1) < 2:
        return 0
    if multiprocessing.current_process().daemon or not spawn_safe():
        return 0
    return 1


def spawn_safe() -> bool:
    """Whether a spawned process may import this process's main script: spawn runs it
    again (as ``__mp_main__``) before the worker starts, so a user's script that calls
    ``run_backtest`` at its top level, without an ``if __name__ == "__main__":`` guard,
    would run its whole backtest again inside the worker. No main script (``python -c``,
    an interactive session) is safe; a script is when its source names ``__main__``."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    path = getattr(spec, "origin", None) or getattr(main, "__file__", None)
    if not path:
        return True
    try:
        source = Path(path).read_text(errors="replace")
    except OSError:
        return False
    return "__main__" in source


@dataclass(frozen=True)
class BlockFit:
    """A block's fit as a worker sends it back: the model's record and its scores of the
    block's sessions (``date``, ``security_id``, ``score``, ``model_id``), or why it could
    not fit; with the fit's wall and CPU seconds in the process that fit it."""

    start: dt.date
    end: dt.date
    record: ModelRecord | None
    scores: pd.DataFrame | None
    error: str | None
    seconds: float
    cpu_seconds: float


def fit_block(lake: Lake, start: dt.date, end: dt.date, config: ResearchConfig) -> BlockFit:
    """Fit the model of the block ``[start, end]`` and score its sessions
    (:func:`fit_and_score`); a block that cannot fit is a :class:`BlockFit` with ``error``.

    On a :class:`ScannedInputs` (a run's or a worker's, fitting its blocks in order) the
    fit reuses what the previous one computed from bitwise-equal inputs (its
    :class:`~pipelines.research.carry.FitCarry`): the same model and scores, less CPU."""
    began, cpu = time.perf_counter(), time.process_time()
    carry = lake.fit_carry if isinstance(lake, ScannedInputs) else None
    try:
        fitted, long = fit_and_score(lake, start, end, config, carry)
    except (InsufficientHistoryError, NoFeaturesError, OutsideCalendarError, ModelError) as exc:
        return BlockFit(start, end, None, None, str(exc), 0.0, 0.0)
    scores = long[["date", "security_id", "score", "model_id"]]
    return BlockFit(
        start,
        end,
        fitted.record,
        scores,
        None,
        time.perf_counter() - began,
        time.process_time() - cpu,
    )


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """``workers`` spawned processes (not forked: the run's process holds DuckDB and Arrow
    thread pools) that exit by themselves once the process that made them is gone: a run
    killed with SIGKILL never shuts its pool down, and an idle worker would otherwise wait
    on its queue forever (it holds both ends of the queue's pipe, so it never sees EOF)."""
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_exit_with_parent,
        initargs=(os.getpid(),),
    )


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: a daemon thread that ends the worker when ``parent`` is gone."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


#: A worker process's scans of the input tables, by lake: taken at its first block.
_WORKER_LAKES: dict[str, ScannedInputs] = {}


def _fit_in_worker(
    root: str,
    options: dict[str, str] | None,
    start: dt.date,
    end: dt.date,
    config: ResearchConfig,
) -> BlockFit:
    """:func:`fit_block` in a worker process, on its own scans of the lake at ``root``."""
    key = json.dumps([root, options], sort_keys=True)
    lake = _WORKER_LAKES.get(key)
    if lake is None:
        lake = _WORKER_LAKES[key] = ScannedInputs(Lake(root, options))
    with fewer_collections():
        return fit_block(lake, start, end, config)


@dataclass(frozen=True)
class Retrain:
    """One retrain of a run: its session, the model (None when it could not fit, ``error``
    says why), the model's training window and validation rank IC, the sessions it scored,
    and what it cost: wall and CPU seconds of the fit with the scoring of its sessions (one
    history read and feature pass serve both, :func:`fit_and_score`), then of handing the
    scores out per session."""

    day: dt.date
    model_id: str | None
    train_start: str | None = None
    train_end: str | None = None
    oos_rank_ic: float | None = None
    sessions: int = 0
    fit_seconds: float = 0.0
    fit_cpu_seconds: float = 0.0
    score_seconds: float = 0.0
    score_cpu_seconds: float = 0.0
    error: str | None = None
    #: Seconds the run waited for this fit (all of it when fit in the run's process; only
    #: what was not ready yet when a worker fit it ahead).
    waited_seconds: float = 0.0
    #: Whether a worker process fit it (its seconds are the worker's).
    in_worker: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class WalkForwardScores:
    """A :class:`~pipelines.daily.protocols.ScoreSource` that retrains on the walk-forward
    schedule over the run's sessions ``days`` (module docstring). ``retrains`` lists the
    fits this process made, in order."""

    def __init__(
        self,
        lake: Lake,
        days: Sequence[dt.date],
        schedule: Schedule,
        config: ResearchConfig,
        fallback: ScoreSource,
        *,
        workers: int | None = None,
    ) -> None:
        self.lake = ScannedInputs(lake)
        self.days = list(days)
        self.schedule = schedule
        self.config = config
        self.fallback = fallback
        self.retrain_at = retrain_days(self.days, schedule)
        self.retrains: list[Retrain] = []
        self._block: tuple[dt.date, dt.date] | None = None
        self._scores: dict[dt.date, pd.DataFrame] = {}
        self.workers = default_workers(len(self.retrain_at)) if workers is None else workers
        self._pool: ProcessPoolExecutor | None = None
        self._pending: dict[tuple[dt.date, dt.date], Future[BlockFit]] = {}

    def close(self) -> None:
        """Stop the worker process (fits not yet handed over are dropped); idempotent."""
        pool, self._pool, self.workers = self._pool, None, 0
        self._pending.clear()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> WalkForwardScores:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def block_of(self, day: dt.date) -> tuple[dt.date, dt.date]:
        """The retrain session whose model scores ``day`` and the last session it scores."""
        k = bisect.bisect_right(self.retrain_at, day) - 1
        if k < 0:
            raise ConfigurationError(f"{day} is before the run's first session {self.days[0]}")
        start = self.retrain_at[k]
        if k + 1 < len(self.retrain_at):
            nxt = self.retrain_at[k + 1]
            end = self.days[self.days.index(nxt) - 1]
        else:
            end = self.days[-1]
        return start, end

    def scores(self, store: Store, day: dt.date, snapshot: MarketSnapshot) -> pd.DataFrame:
        """The session's scores by the model fit at its block's retrain (``model_id`` = the
        model's id); the fallback scorer's when that retrain could not fit or the model
        scored nothing on the session."""
        block = self.block_of(day)
        if block != self._block:
            self._load(*block)
        frame = self._scores.get(day)
        if frame is None or frame.empty:
            log.info("backtest retrain: no model scores for %s; the config's scorer scores it", day)
            return self.fallback.scores(store, day, snapshot)
        return frame

    def prefetch(self, day: dt.date) -> None:
        """Hand the worker (started here) the block that scores ``day`` and the
        :data:`AHEAD` after it now: the run calls it before its first session, so the
        worker's start-up (a spawned interpreter's imports, its scans of the input tables)
        and first fit overlap the run's own first session up to its scores, instead of
        that session waiting for all of them; :meth:`_take` hands over the same before
        each fit it takes. Nothing without a worker."""
        if not self.workers:
            return
        start, _ = self.block_of(day)
        k = self.retrain_at.index(start)
        for nxt in self.retrain_at[k : k + 1 + AHEAD]:
            self._submit(self.block_of(nxt))

    def _submit(self, block: tuple[dt.date, dt.date]) -> None:
        """Hand ``block`` to the worker (started on first use) unless it has it already."""
        if not self.workers or block in self._pending:
            return
        try:
            if self._pool is None:
                self._pool = worker_pool(self.workers)
                # A run that raises never reaches close(): stop the worker with the source.
                weakref.finalize(self, self._pool.shutdown, wait=False, cancel_futures=True)
            where = self.lake.location
            self._pending[block] = self._pool.submit(
                _fit_in_worker, where.root, where.options(), *block, self.config
            )
        except Exception as exc:  # any failure to start: fit here instead
            log.warning("backtest retrain: no worker process (%s); fitting in this one", exc)
            self.close()

    def _take(self, start: dt.date, end: dt.date) -> tuple[BlockFit, bool]:
        """The fit of ``[start, end]``: the worker's (the next blocks handed to it first,
        so it goes on while this process trades), else one made here; and whether the
        worker made it."""
        self.prefetch(start)
        future = self._pending.pop((start, end), None)
        if future is not None:
            try:
                return future.result(), True
            except Exception as exc:  # a dead worker: go on without one
                log.warning(
                    "backtest retrain at %s: the worker process failed (%r); fitting in "
                    "this process from now on",
                    start,
                    exc,
                )
                self.close()
        return fit_block(self.lake, start, end, self.config), False

    def _load(self, start: dt.date, end: dt.date) -> None:
        """Fit the model of the block ``[start, end]`` and score all its sessions (or take
        that fit from the worker)."""
        self._block, self._scores = (start, end), {}
        waited = time.perf_counter()
        fit, in_worker = self._take(start, end)
        waited = time.perf_counter() - waited
        if fit.record is None:
            log.warning(
                "backtest retrain at %s: no model (%s); the config's scorer scores",
                start,
                fit.error,
            )
            self.retrains.append(
                Retrain(start, None, error=fit.error, waited_seconds=waited, in_worker=in_worker)
            )
            return
        assert fit.scores is not None
        began, cpu = time.perf_counter(), time.process_time()
        record = fit.record
        for when, rows in fit.scores.groupby("date", sort=True):
            day = pd.Timestamp(str(when)).date()
            self._scores[day] = rows[["security_id", "score", "model_id"]].reset_index(drop=True)
        oos = record.metrics.get("oos_rank_ic")
        self.retrains.append(
            Retrain(
                start,
                record.model_id,
                record.train_start,
                record.train_end,
                None if oos is None else float(oos),
                len(self._scores),
                fit.seconds,
                fit.cpu_seconds,
                time.perf_counter() - began,
                time.process_time() - cpu,
                waited_seconds=waited,
                in_worker=in_worker,
            )
        )
        log.info(
            "backtest retrain at %s: model %s (train %s..%s), %.1f s fit%s, %.1f s waited, "
            "%d sessions scored",
            start,
            record.model_id,
            record.train_start,
            record.train_end,
            fit.seconds,
            " in the worker" if in_worker else "",
            waited,
            len(self._scores),
        )


__all__ = [
    "AHEAD",
    "BlockFit",
    "Retrain",
    "ScannedInputs",
    "WalkForwardScores",
    "default_workers",
    "fit_block",
    "research_config",
    "retrain_days",
    "spawn_safe",
    "worker_pool",
]
