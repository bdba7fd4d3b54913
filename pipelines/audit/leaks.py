"""The leak audit: does any research output for a session depend on what was not known then?

For each session ``D`` of a range, :func:`audit_leaks` re-runs the research stages of the
daily loop (:func:`~pipelines.research.stages.compute_universe`,
:func:`~pipelines.research.stages.compute_features`,
:func:`~pipelines.research.stages.compute_labels`, and
:func:`~pipelines.research.stages.score_day` when a champion is known then) over an
:class:`~pipelines.audit.store.AuditLake` capped at ``D``'s decision cutoff (every table as
known then; writes kept in memory, never committed), and compares what they return with:

* **the lake** — the rows the lake holds for ``D`` as known at ``D``'s cutoff, written by
  ``D``'s own run (``known_at`` = the cutoff). A difference means the lake's answer for
  ``D`` cannot be reproduced from what was known at ``D``: typically an input fact loaded
  *after* ``D``'s outputs were computed but stamped as known before the cutoff (a backdated
  load, :attr:`Cause.kind` ``backdated``), two versions of one fact that no as-of
  tie-breaker orders (``ambiguous``), or one published after the cutoff (``late_fact``);
* **hindsight** — the same outputs as the research history computes them for training and
  walk-forwards (:func:`~pipelines.pit.history.load_history` through
  :data:`HINDSIGHT_SESSIONS` sessions after the range, read as known now;
  :func:`~pipelines.research.stages.session_features`): row ``D`` must equal what ``D``'s
  stage computed. A feature whose row ``D`` reads rows after ``D`` differs here
  (``reads_ahead``): the model trains on values the daily loop can never compute. Scores
  are compared with the lake only (the history holds no scores).

The report names, per stage and output table and per comparison, "identical" or the first
differing key (session, then the table's key) with both values and the cause: the input row
(table, key, ``known_at``, ``_ingested_at``) known after ``D`` that explains it, the feature
reading ahead, or ``unexplained`` (e.g. the stage's code changed since the lake's run).
:func:`record` appends the report to the lake table ``leak_audits``
(:mod:`pipelines.lake.catalog.audit`), which ``alphafactory status`` summarizes in one line.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.audit.store import AuditLake
from pipelines.errors import AlphaFactoryError
from pipelines.features.availability import partition
from pipelines.features.registry import compute_feature, registry
from pipelines.features.spec import FeatureSpec
from pipelines.lake import Lake
from pipelines.lake.catalog import get_table
from pipelines.lake.catalog.audit import LEAK_AUDITS
from pipelines.pit.history import PanelHistory, load_history
from pipelines.pit.labels import LabelSet
from pipelines.pit.lake_panel import INPUT_TABLES, empty_input_tables
from pipelines.pit.panel import Panel
from pipelines.research.stages import (
    DEFAULT_CONFIG,
    NoChampionError,
    ResearchConfig,
    ResearchContext,
    compute_features,
    compute_labels,
    compute_universe,
    score_day,
    session_features,
    universe_frame,
)
from pipelines.timeline import LATEST, decision_cutoff, system_clock, trading_calendar

log = logging.getLogger(__name__)

#: Sessions after the audited range the hindsight history reaches (when priced): a feature
#: reading up to this many rows ahead shows on every audited session.
HINDSIGHT_SESSIONS = 21
STAGES: tuple[str, ...] = ("universe", "features", "labels", "scores")
#: Each stage's output table.
STAGE_TABLES: Mapping[str, str] = {
    "universe": "universe",
    "features": "features",
    "labels": "labels",
    "scores": "alpha_scores",
}
LAKE, HINDSIGHT = "lake", "hindsight"
#: What each stage is compared with: scores only with the lake (the research history holds
#: no scores; a feature leak shows in ``features`` against hindsight).
COMPARED: Mapping[str, tuple[str, ...]] = {
    "universe": (LAKE, HINDSIGHT),
    "features": (LAKE, HINDSIGHT),
    "labels": (LAKE, HINDSIGHT),
    "scores": (LAKE,),
}


class AuditRangeError(AlphaFactoryError, ValueError):
    """The audit range holds no session, or a stage name is unknown."""


@dataclass(frozen=True)
class Cause:
    """Why a recomputed output differs: ``kind`` is ``backdated`` (an input row stamped as
    known by the cutoff but loaded after the session's outputs were written), ``ambiguous``
    (two versions of one input fact that no as-of tie-breaker orders), ``late_fact``
    (an input row about a date up to ``D`` published after ``D``'s cutoff), ``reads_ahead``
    (the feature's row ``D`` changes with rows after ``D``) or ``unexplained``."""

    kind: str
    table: str = ""
    key: Mapping[str, str] = field(default_factory=dict)
    known_at: str = ""
    ingested_at: str = ""
    note: str = ""

    def describe(self) -> str:
        """One line: the kind, then the input row or the feature."""
        if self.kind in ("backdated", "ambiguous", "late_fact"):
            key = ", ".join(f"{k}={v}" for k, v in self.key.items())
            return (
                f"{self.kind}: {self.table} row ({key}) known_at {self.known_at}, "
                f"loaded {self.ingested_at}"
            )
        return f"{self.kind}: {self.note}" if self.note else self.kind


@dataclass(frozen=True)
class Difference:
    """The first key (session, then the table's key) where two answers differ."""

    session: dt.date
    key: Mapping[str, str]
    recomputed: str
    other: str
    cause: Cause


@dataclass(frozen=True)
class Comparison:
    """One stage's output table, recomputed as known at each session, against the lake's
    rows or against hindsight, over the audited sessions."""

    stage: str
    table: str
    against: str
    sessions: int
    rows: int = 0
    differing_sessions: int = 0
    first: Difference | None = None
    note: str = ""

    @property
    def identical(self) -> bool:
        return self.first is None

    def describe(self) -> str:
        """One line: identical, or the first differing key and its cause."""
        head = f"{self.stage:9} {self.table:12} vs {self.against:9}"
        if self.first is None and self.sessions == 0:
            return f"{head} not compared ({self.note or 'nothing to compare'})"
        if self.first is None:
            extra = f" ({self.note})" if self.note else ""
            return f"{head} identical: {self.rows} rows over {self.sessions} sessions{extra}"
        key = ", ".join(f"{k}={v}" for k, v in self.first.key.items())
        return (
            f"{head} LEAK on {self.differing_sessions}/{self.sessions} sessions; first on "
            f"{self.first.session}, key ({key}): recomputed {self.first.recomputed}, {self.against} "
            f"{self.first.other}; cause {self.first.cause.describe()}"
        )


@dataclass(frozen=True)
class LeakReport:
    """What :func:`audit_leaks` found over ``[start, end]``."""

    audit_id: str
    start: dt.date
    end: dt.date
    audited_at: dt.datetime
    sessions: int
    comparisons: tuple[Comparison, ...]

    @property
    def leaks(self) -> list[Comparison]:
        return [c for c in self.comparisons if not c.identical]

    @property
    def verdict(self) -> str:
        n = len(self.leaks)
        return "clean" if n == 0 else f"{n} leak{'s' if n > 1 else ''}"

    def lines(self) -> list[str]:
        """The report as text: a header, one line per comparison, the verdict."""
        head = (
            f"leak audit {self.audit_id}: {self.sessions} sessions {self.start}..{self.end} "
            f"(recomputed as known at each session's cutoff)"
        )
        return [head, *(c.describe() for c in self.comparisons), f"verdict: {self.verdict}"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "audit_id": self.audit_id,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "audited_at": self.audited_at.isoformat(),
            "sessions": self.sessions,
            "verdict": self.verdict,
            "comparisons": [{**asdict(c), "identical": c.identical} for c in self.comparisons],
        }


# --- frames -------------------------------------------------------------------------------

#: Per output table: its key columns (after the session's ``valid_date``) and value columns.
_SHAPES: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "universe": (("security_id",), ("sector", "close", "adv_21d", "market_cap")),
    "features": (("feature", "security_id"), ("value",)),
    "labels": (("label", "security_id"), ("horizon", "value")),
    "scores": (("security_id",), ("score", "model_id")),
}


def _canonical(table: str, frame: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """``frame`` with ``valid_date`` (default ``day``), the key and the values, sorted."""
    keys, values = _SHAPES[table]
    out = pd.DataFrame(index=range(len(frame)))
    dates = frame["valid_date"] if "valid_date" in frame else pd.Series([day] * len(frame))
    out["valid_date"] = [str(pd.Timestamp(d).date()) for d in dates]
    for k in keys:
        out[k] = frame[k].astype(str).to_numpy() if len(frame) else []
    for v in values:
        column = frame[v] if v in frame else pd.Series([np.nan] * len(frame))
        out[v] = column.to_numpy()
    return out.sort_values(["valid_date", *keys], kind="stable").reset_index(drop=True)


def _same(a: pd.Series, b: pd.Series) -> np.ndarray:
    """Element-wise bit equality, missing == missing."""
    missing = a.isna().to_numpy() & b.isna().to_numpy()
    try:
        equal = (a.to_numpy() == b.to_numpy()).astype(bool)
    except (TypeError, ValueError):
        equal = np.array([x == y for x, y in zip(a, b, strict=True)], dtype=bool)
    return np.asarray(equal | missing, dtype=bool)


def _plain(value: object) -> object:
    """A numpy scalar as the Python value it holds (for a readable repr)."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _render(row: pd.Series, values: Sequence[str], side: str, present: bool) -> str:
    if not present:
        return "absent"
    parts = [f"{v}={_plain(row[f'{v}_{side}'])!r}" for v in values]
    return parts[0].split("=", 1)[1] if len(parts) == 1 else "{" + ", ".join(parts) + "}"


def first_difference(
    table: str, recomputed: pd.DataFrame, other: pd.DataFrame
) -> tuple[dict[str, str], str, str] | None:
    """The first key (``valid_date``, then the table's key) where two canonical frames
    differ — a row on one side only, or a value not bit-identical — with both renderings."""
    keys, values = _SHAPES[table]
    on = ["valid_date", *keys]
    merged = recomputed.merge(other, on=on, how="outer", suffixes=("_a", "_b"), indicator=True)
    merged = merged.sort_values(on, kind="stable").reset_index(drop=True)
    differs = np.array(merged["_merge"] != "both", dtype=bool)
    for v in values:
        differs |= ~_same(merged[f"{v}_a"], merged[f"{v}_b"])
    if not differs.any():
        return None
    row = merged.iloc[int(np.argmax(differs))]
    key = {k: str(row[k]) for k in on}
    mark = row["_merge"]
    return (
        key,
        _render(row, values, "a", mark != "right_only"),
        _render(row, values, "b", mark != "left_only"),
    )


# --- causes -------------------------------------------------------------------------------


def _stamp(value: object) -> str:
    return pd.Timestamp(value).isoformat() if value is not None else ""  # type: ignore[arg-type]


def _input_rows(lake: Lake, security: str | None, day: dt.date) -> list[tuple[str, pd.DataFrame]]:
    """Every input table's rows about ``security`` (all when None) valid up to ``day``."""
    out = []
    for name in INPUT_TABLES:
        if lake.table(name) is None:
            continue
        spec = get_table(name)
        expr = pc.field("valid_date") <= pa.scalar(day, pa.date32())
        if security is not None and "security_id" in spec.column_names:
            expr = expr & (pc.field("security_id") == security)
        cols = [*spec.key, "valid_date", "known_at", "_ingested_at", "_batch_id"]
        rows = lake.dataset(name).to_table(columns=list(dict.fromkeys(cols)), filter=expr)
        out.append((name, rows.to_pandas()))
    return out


def find_cause(
    lake: Lake,
    day: dt.date,
    security: str | None,
    *,
    outputs_ingested: pd.Timestamp | None,
    backdated: bool,
) -> Cause:
    """The input row that explains a difference on session ``day``: with ``backdated``, a
    row known by ``day``'s cutoff but loaded after ``outputs_ingested`` (when the lake's
    outputs for ``day`` were written); else two versions of one fact known by the cutoff
    that no as-of tie-breaker orders (``ambiguous``: same ``known_at``, ``_ingested_at``
    and batch); else a row valid up to ``day`` published after its cutoff. Rows about ``security`` are looked at first, then any (a
    cross-sectional output — a market-residual label — moves with every name's input);
    the one about the latest date is named."""
    cut = pd.Timestamp(decision_cutoff(day))
    tests: list[tuple[str, Callable[[pd.DataFrame], pd.Series]]] = []
    if backdated and outputs_ingested is not None:
        seen = outputs_ingested
        tests.append(("backdated", lambda r: (r["known_at"] <= cut) & (r["_ingested_at"] > seen)))
    # two versions of one fact indistinguishable by every as-of tie-breaker: which one a
    # read returns depends on the scan order, so two reads of the same knowledge may differ
    tests.append(("ambiguous", lambda r: (r["known_at"] <= cut) & r.duplicated(keep=False)))
    tests.append(("late_fact", lambda r: r["known_at"] > cut))
    scopes = [security, None] if security is not None else [None]
    read: dict[str | None, list[tuple[str, pd.DataFrame]]] = {}
    for kind, test, scope in ((k, t, s) for k, t in tests for s in scopes):
        if scope not in read:
            read[scope] = _input_rows(lake, scope, day)
        best: tuple[tuple[Any, ...], str, pd.Series] | None = None
        for name, frame in read[scope]:
            hit = frame[test(frame)] if len(frame) else frame
            if not len(hit):
                continue
            hit = hit.sort_values(["valid_date", "_ingested_at"], kind="stable")
            last = hit.iloc[-1]
            rank = (last["valid_date"], last["_ingested_at"])
            if best is None or rank > best[0]:
                best = (rank, name, last)
        if best is not None:
            _, name, row = best
            spec = get_table(name)
            key = {k: str(row[k]) for k in spec.key}
            key["valid_date"] = str(row["valid_date"])
            return Cause(kind, name, key, _stamp(row["known_at"]), _stamp(row["_ingested_at"]))
    return Cause(
        "unexplained",
        note="no input fact about this date arrived after it was computed; "
        "the stage's code or configuration differs from the run that wrote the lake",
    )


def _reads_ahead(history: PanelHistory, spec: FeatureSpec, day: dt.date) -> bool:
    """Whether the feature's row ``day`` changes when the rows after ``day`` are removed."""
    panel = history.panel
    full = compute_feature(spec, panel).loc[pd.Timestamp(day)].to_numpy(dtype=np.float64)
    cut = compute_feature(spec, panel.truncate(pd.Timestamp(day))).iloc[-1]
    return not np.array_equal(full, cut.to_numpy(dtype=np.float64), equal_nan=True)


# --- the audit ----------------------------------------------------------------------------


@dataclass
class _Tally:
    stage: str
    table: str
    against: str
    sessions: int = 0
    rows: int = 0
    differing: int = 0
    first: Difference | None = None
    notes: list[str] = field(default_factory=list)

    def done(self) -> Comparison:
        note = "; ".join(dict.fromkeys(self.notes))
        return Comparison(
            self.stage,
            self.table,
            self.against,
            self.sessions,
            self.rows,
            self.differing,
            self.first,
            note,
        )


def _stored(lake: Lake, table: str, day: dt.date, first: dt.date) -> pd.DataFrame | None:
    """The rows ``day``'s run wrote to ``table`` (valid in ``[first, day]``, stamped with
    its cutoff), as known at the cutoff; None when it wrote none."""
    if lake.table(table) is None:
        return None
    cut = decision_cutoff(day)
    rows = lake.as_of(table, known_at=cut, valid_at=(first, day)).to_pandas()
    rows = rows[pd.to_datetime(rows["known_at"], utc=True) == pd.Timestamp(cut)]
    return rows if len(rows) else None


def _last_priced(lake: Lake, end: dt.date) -> dt.date:
    """The last session up to :data:`HINDSIGHT_SESSIONS` after ``end`` with a price known."""
    calendar = trading_calendar()
    try:
        far = calendar.offset(end, HINDSIGHT_SESSIONS)
    except AlphaFactoryError:  # the calendar ends first
        far = calendar.last
    if lake.table("prices") is None:
        return end
    rng = (pc.field("valid_date") > pa.scalar(end, pa.date32())) & (
        pc.field("valid_date") <= pa.scalar(far, pa.date32())
    )
    dates = lake.dataset("prices").to_table(columns=["valid_date"], filter=rng)["valid_date"]
    if not len(dates):
        return end
    last = pc.max(dates).as_py()
    return calendar.at_or_before(last) or end


@dataclass(frozen=True)
class _StageRun:
    """A stage's output as known at the session, its hindsight twin (None: not compared),
    the first valid date it writes, or why it was skipped."""

    recomputed: pd.DataFrame
    hindsight: pd.DataFrame | None
    first: dt.date
    skipped: str = ""
    #: valid dates (ISO) hindsight holds for this session (None: all of the stage's rows)
    hindsight_dates: frozenset[str] | None = None


def _against_lake(
    lake: Lake, tally: _Tally, canon: pd.DataFrame, day: dt.date, first: dt.date
) -> None:
    """Compare a stage's recomputed rows with the rows ``day``'s run wrote to the lake."""
    stage = tally.stage
    stored = _stored(lake, tally.table, day, first)
    if stored is None:
        tally.notes.append("sessions without stored rows skipped")
        return
    stored_canon = _canonical(stage, stored, day)
    mine = canon
    if stage in ("features", "labels"):
        # compare what the lake holds: a feature (label) added since is no leak
        column = _SHAPES[stage][0][0]
        held = set(stored_canon[column])
        mine = canon[canon[column].isin(held)].reset_index(drop=True)
    tally.sessions += 1
    tally.rows += len(stored_canon)
    found = first_difference(stage, mine, stored_canon)
    if found is None:
        return
    tally.differing += 1
    if tally.first is None:
        ingested = pd.to_datetime(stored["_ingested_at"], utc=True).min()
        cause = find_cause(
            lake, day, found[0].get("security_id"), outputs_ingested=ingested, backdated=True
        )
        tally.first = Difference(day, found[0], found[1], found[2], cause)


def audit_leaks(
    lake: Lake,
    start: dt.date,
    end: dt.date,
    *,
    stages: Sequence[str] = STAGES,
    config: ResearchConfig = DEFAULT_CONFIG,
    now: dt.datetime | None = None,
) -> LeakReport:
    """Audit sessions ``[start, end]`` (module docstring); nothing is written to ``lake``."""
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise AuditRangeError(f"unknown stages {unknown} (known: {', '.join(STAGES)})")
    # the daily order: scores read the features recomputed before them in the same view
    stages = [s for s in STAGES if s in stages]
    calendar = trading_calendar()
    sessions = calendar.sessions(start, end)
    if not sessions:
        raise AuditRangeError(f"no trading session in [{start}, {end}]")
    audited_at = now or system_clock()
    table = registry()
    names = list(table) if config.features is None else list(config.features)
    specs = {n: table[n] for n in names}
    lookback = max((s.lookback for s in specs.values()), default=0)
    horizons = config.label_horizons
    reach = max(lookback, max(horizons, default=0)) + 1
    history = load_history(
        lake,
        calendar.back(sessions[0], reach + 1)[0],
        _last_priced(lake, sessions[-1]),
        known_at=LATEST,
        rule=config.rule,
    )
    hind_specs, _ = partition(specs, empty_input_tables(lake, None))
    session_panel = history.session_panel()
    hind_features = session_features(history, hind_specs) if "features" in stages else {}
    hind_labels: dict[tuple[int, str], LabelSet] = (
        {(h, kind): history.label(h, kind) for h in horizons for kind in config.label_kinds}
        if "labels" in stages
        else {}
    )
    tallies = {
        (stage, against): _Tally(stage, STAGE_TABLES[stage], against)
        for stage in stages
        for against in COMPARED[stage]
    }
    universe = session_panel.universe()

    for day in sessions:
        cut = decision_cutoff(day)
        capped = AuditLake(lake, cut)
        ctx = ResearchContext(capped, day, config)
        pos = session_panel.position(pd.Timestamp(day))
        if "scores" in stages:
            # scores read the session's universe and features from the store: recompute
            # them in this view first, or the scores would read the lake's stored ones
            for needed, compute in (("universe", compute_universe), ("features", compute_features)):
                if needed not in stages:
                    compute(ctx)
        for stage in stages:
            run = _run_stage(
                stage,
                ctx,
                session_panel,
                universe[pos],
                pos,
                hind_features,
                hind_labels,
                hind_specs,
                capped,
            )
            if run.skipped:
                for against in COMPARED[stage]:
                    tallies[(stage, against)].notes.append(run.skipped)
                continue
            canon = _canonical(stage, run.recomputed, day)
            _against_lake(lake, tallies[(stage, LAKE)], canon, day, run.first)
            if run.hindsight is None:
                continue
            hind_tally = tallies[(stage, HINDSIGHT)]
            hind_canon = _canonical(stage, run.hindsight, day)
            hind_tally.sessions += 1
            hind_tally.rows += len(hind_canon)
            mine = canon
            if stage == "features":
                mine = canon[canon["feature"].isin(hind_specs)].reset_index(drop=True)
            if run.hindsight_dates is not None:
                mine = mine[mine["valid_date"].isin(run.hindsight_dates)].reset_index(drop=True)
            found = first_difference(stage, mine, hind_canon)
            if found is not None:
                hind_tally.differing += 1
                if hind_tally.first is None:
                    cause = _hindsight_cause(lake, history, hind_specs, day, found[0])
                    hind_tally.first = Difference(day, found[0], found[1], found[2], cause)
        log.info("leak audit %s: %d stage rows recomputed in memory", day, capped.pending_rows())

    digest = hashlib.sha256(
        f"{sessions[0]}:{sessions[-1]}:{audited_at.isoformat()}".encode()
    ).hexdigest()[:12]
    return LeakReport(
        f"L{digest}",
        sessions[0],
        sessions[-1],
        audited_at,
        len(sessions),
        tuple(t.done() for t in tallies.values()),
    )


def _run_stage(
    stage: str,
    ctx: ResearchContext,
    session_panel: Panel,
    members: np.ndarray,
    pos: int,
    hind_features: Mapping[str, pd.DataFrame],
    hind_labels: Mapping[tuple[int, str], LabelSet],
    hind_specs: Mapping[str, FeatureSpec],
    capped: AuditLake,
) -> _StageRun:
    """Run ``stage`` for ``ctx``'s session over the capped lake; its hindsight twin."""
    day = ctx.day
    calendar = trading_calendar()
    if stage == "universe":
        recomputed = compute_universe(ctx)
        return _StageRun(recomputed, universe_frame(session_panel, day), day)
    if stage == "scores":
        try:
            scores = score_day(ctx)
        except NoChampionError:
            return _StageRun(pd.DataFrame(), None, day, "sessions without a champion skipped")
        return _StageRun(scores, None, day)
    if stage == "features":
        recomputed = compute_features(ctx)
        skipped = set(hind_specs) - set(partition(hind_specs, empty_input_tables(capped))[0])
        secs = session_panel.securities[members].astype(str)
        frames = []
        for name, wide in hind_features.items():
            if name in skipped:
                continue
            values = wide.iloc[pos].to_numpy(dtype=np.float64)[members]
            ok = np.isfinite(values)
            frames.append(
                pd.DataFrame({"security_id": secs[ok], "feature": name, "value": values[ok]})
            )
        hindsight = (
            pd.concat(frames, ignore_index=True)
            if frames
            else pd.DataFrame({"security_id": [], "feature": [], "value": []})
        )
        return _StageRun(recomputed, hindsight, day)
    recomputed = compute_labels(ctx)
    frames = []
    for (h, _kind), label in hind_labels.items():
        t = pos - h
        if t < 0:
            continue
        values = label.values.iloc[t].to_numpy(dtype=np.float64)
        ok = np.isfinite(values)
        frames.append(
            pd.DataFrame(
                {
                    "security_id": session_panel.securities[ok].astype(str),
                    "label": label.name,
                    "horizon": np.int32(h),
                    "value": values[ok],
                    "valid_date": session_panel.dates[t].date(),
                }
            )
        )
    hindsight = pd.concat(frames, ignore_index=True) if frames else recomputed.iloc[0:0]
    # the stage also writes the labels of late sessions it catches up on: hindsight holds
    # each label once, at its own horizon's date, so it is compared on those dates only
    ends = {calendar.offset(day, -h) for h in {h for h, _ in hind_labels}}
    written = [pd.Timestamp(d).date() for d in recomputed["valid_date"]] if len(recomputed) else []
    first = min([*ends, *written], default=day)
    return _StageRun(recomputed, hindsight, first, "", frozenset(str(d) for d in ends))


def _hindsight_cause(
    lake: Lake,
    history: PanelHistory,
    specs: Mapping[str, FeatureSpec],
    day: dt.date,
    key: Mapping[str, str],
) -> Cause:
    """Why hindsight differs at ``key``: the feature reads rows after ``day``, else a late
    fact about the security."""
    name = key.get("feature")
    if name is not None and name in specs and _reads_ahead(history, specs[name], day):
        nxt = trading_calendar().next_session(day)
        return Cause(
            "reads_ahead",
            "features",
            {"feature": name},
            note=f"feature {name}'s value on {day} changes with rows after it (from {nxt})",
        )
    return find_cause(lake, day, key.get("security_id"), outputs_ingested=None, backdated=False)


# --- the record ---------------------------------------------------------------------------


def record(lake: Lake, report: LeakReport) -> int:
    """Append ``report`` to ``leak_audits`` (one row per comparison); rows written."""
    rows = []
    for c in report.comparisons:
        first = c.first
        rows.append(
            {
                "audit_id": report.audit_id,
                "stage": c.stage,
                "table_name": c.table,
                "against": c.against,
                "start": report.start,
                "end": report.end,
                "sessions": c.sessions,
                "differing_sessions": c.differing_sessions,
                "verdict": "leak" if first else "identical" if c.sessions else "not_compared",
                "first_key": json.dumps(dict(first.key)) if first else None,
                "cause_kind": first.cause.kind if first else None,
                "cause": first.cause.describe() if first else None,
                "detail": c.describe(),
                "audited_at": report.audited_at,
                "valid_date": report.end,
                "known_at": report.audited_at,
            }
        )
    result = lake.write(LEAK_AUDITS.name, pd.DataFrame(rows))
    return result.rows if result.written else 0


def last_audit_line(lake: Lake) -> str:
    """One line for ``alphafactory status``: the last audit's time, range and verdict."""
    if lake.table(LEAK_AUDITS.name) is None:
        return "leak audit: never run (alphafactory audit leaks --start D1 --end D2)"
    rows = lake.dataset(LEAK_AUDITS.name).to_table().to_pandas()
    if not len(rows):
        return "leak audit: never run (alphafactory audit leaks --start D1 --end D2)"
    last = rows[rows["audited_at"] == rows["audited_at"].max()]
    leaks = last[last["verdict"] == "leak"]
    where = ", ".join(f"{r.stage} vs {r.against}" for r in leaks.itertuples())
    verdict = "clean" if not len(leaks) else f"{len(leaks)} leaks ({where})"
    first = last.iloc[0]
    return (
        f"leak audit: last {pd.Timestamp(first['audited_at']):%Y-%m-%d %H:%M} UTC "
        f"over {first['start']}..{first['end']}: {verdict}"
    )


__all__ = [
    "AuditRangeError",
    "Cause",
    "Comparison",
    "Difference",
    "LeakReport",
    "audit_leaks",
    "find_cause",
    "first_difference",
    "last_audit_line",
    "record",
]
