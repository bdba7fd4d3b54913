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
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd
import pyarrow.dataset as ds

from models.base import ModelError
from pipelines.daily.protocols import ScoreSource
from pipelines.errors import ConfigurationError
from pipelines.lake import Lake
from pipelines.lake.interface import Store
from pipelines.pit.lake_panel import INPUT_TABLES
from pipelines.pit.snapshot import MarketSnapshot
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


def research_config(overrides: Mapping[str, Any]) -> ResearchConfig:
    """The research config of the backtest's retrains: the defaults with ``overrides``
    (``DailyConfig.retrain_research``) applied; an unknown field is a ConfigurationError."""
    values: dict[str, Any] = {
        k: tuple(v) if k in _TUPLE_FIELDS and v is not None else v for k, v in overrides.items()
    }
    names = {f.name for f in dataclasses.fields(ResearchConfig)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigurationError(
            f"retrain_research: unknown research config fields {unknown} (known: {sorted(names)})"
        )
    return dataclasses.replace(DEFAULT_CONFIG, **values)


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

    def dataset(
        self, name: str, *, prune: list[Any] | str | None = None, refresh: bool = True
    ) -> ds.Dataset:
        """The table as :meth:`Lake.dataset` gives it; an input table from its scan (every
        row: the readers filter by knowledge time themselves)."""
        if name not in INPUT_TABLES or prune is not None:
            return super().dataset(name, prune=prune, refresh=refresh)
        scan = self._scans.get(name)
        if scan is None:
            scan = self._scans[name] = ds.dataset(super().dataset(name).to_table())
        return scan


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

    def _load(self, start: dt.date, end: dt.date) -> None:
        """Fit the model of the block ``[start, end]`` and score all its sessions."""
        self._block, self._scores = (start, end), {}
        began, cpu = time.perf_counter(), time.process_time()
        try:
            fitted, long = fit_and_score(self.lake, start, end, self.config)
        except (InsufficientHistoryError, NoFeaturesError, OutsideCalendarError, ModelError) as exc:
            log.warning(
                "backtest retrain at %s: no model (%s); the config's scorer scores", start, exc
            )
            self.retrains.append(Retrain(start, None, error=str(exc)))
            return
        fit_s, fit_cpu = time.perf_counter() - began, time.process_time() - cpu
        began, cpu = time.perf_counter(), time.process_time()
        record = fitted.record
        for when, rows in long.groupby("date", sort=True):
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
                fit_s,
                fit_cpu,
                time.perf_counter() - began,
                time.process_time() - cpu,
            )
        )
        log.info(
            "backtest retrain at %s: model %s (train %s..%s), %.1f s fit, %d sessions scored",
            start,
            record.model_id,
            record.train_start,
            record.train_end,
            fit_s,
            len(self._scores),
        )


__all__ = ["Retrain", "ScannedInputs", "WalkForwardScores", "research_config", "retrain_days"]
