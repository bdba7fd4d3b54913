"""Research stages: ``stage(ctx) -> what it wrote``, ``ctx`` a :class:`ResearchContext`.

A :class:`ResearchContext` satisfies :class:`pipelines.lake.interface.StageContext`: the
store (the lake), the session ``day`` and ``now()`` — the session's decision cutoff
(:func:`pipelines.timeline.decision_cutoff`) unless a clock is given — plus the
:class:`ResearchConfig`. Each stage reads the lake only through the point-in-time panel
(:mod:`pipelines.pit.lake_panel`, every row as of its own session's cutoff) or
``ctx.store.as_of(known_at=ctx.now())``, and writes only its declared tables through
``ctx.store.write`` with ``valid_date`` = the session and ``known_at`` = ``ctx.now()``, in
one idempotent commit (re-running a day adds nothing). The same functions serve the DAGs,
the CLI and the tests; none imports Airflow. Each returns the rows it computed (the DAG
task reports their count), :func:`retrain` a :class:`RetrainResult`.

* :func:`compute_universe` → ``universe``
* :func:`compute_features` → ``features`` (raw values of universe members)
* :func:`compute_labels` → ``labels`` that became known at ``day``
* :func:`retrain` → ``model_registry`` + ``model_champion`` (+ importances in diagnostics)
* :func:`score_day` → ``alpha_scores`` with the champion's model id
* :func:`diagnose` → ``research_diagnostics`` for the score dates whose returns matured
* :func:`walk_forward_on_lake` → a research walk-forward over a lake panel (no writes)

A feature whose input tables hold nothing known at the session's cutoff, or whose inputs
have no value in the panel rows it reads, is skipped (:mod:`pipelines.features.availability`):
one WARNING line says why, and the skip is stored in ``research_diagnostics`` (kind
``skipped_feature``) for the research report. Training uses the features not skipped.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models.base import Model, ModelSpec
from models.factory import restore_model
from models.lake_store import (
    StoredModel,
    champion_id,
    list_models,
    load_model,
    record_decision,
    save_model,
)
from models.record import ModelRecord
from models.walk_forward import WalkForwardResult, fit_split, run_walk_forward
from pipelines.errors import AlphaFactoryError
from pipelines.features.availability import FeatureSkip, partition
from pipelines.features.registry import UnknownFeatureError, compute_feature, registry
from pipelines.features.spec import FeatureSpec
from pipelines.lake import Lake
from pipelines.lake.interface import StageContext
from pipelines.pit.dataset import ResearchDataset, build_dataset
from pipelines.pit.history import PanelHistory, load_history
from pipelines.pit.labels import (
    DEFAULT_HORIZONS,
    LabelKind,
    LabelSet,
    forward_returns,
    label_available_date,
    make_label,
)
from pipelines.pit.lake_panel import (
    DEFAULT_RULE,
    UniverseRule,
    build_panel,
    empty_input_tables,
)
from pipelines.pit.normalize import rank_gauss
from pipelines.pit.panel import Panel
from pipelines.pit.splits import Split, WalkForwardConfig, walk_forward_splits
from pipelines.research import diagnostics as dg
from pipelines.research.carry import FitCarry
from pipelines.timeline import Clock, decision_cutoff, trading_calendar

log = logging.getLogger(__name__)

IC_HORIZONS: tuple[int, ...] = dg.IC_DECAY_HORIZONS
#: ``research_diagnostics`` kind of a session whose own prices were not known at its cutoff.
UNPRICED_SESSION_KIND = "unpriced_session"
N_QUANTILES = 5


class NoChampionError(AlphaFactoryError, LookupError):
    """Scoring was asked for a day before any model was trained and promoted."""


class InsufficientHistoryError(AlphaFactoryError, ValueError):
    """Too few sessions in the lake before the fit day to train."""


class NoFeaturesError(AlphaFactoryError, ValueError):
    """Every chosen feature was skipped (its input data is absent): nothing to train on."""


@dataclass(frozen=True)
class ResearchConfig:
    """Training and promotion settings (all windows in sessions).

    The training fold is the last ``train_sessions`` label dates before the purged,
    embargoed validation fold (``valid_sessions``) that ends ``horizon + embargo``
    sessions before the fit day (see :mod:`pipelines.pit.splits`). A challenger
    replaces the champion iff its out-of-sample rank IC beats the champion's by ``margin``;
    the champion's is its *live* rank IC over the scores it produced whose returns have
    matured (at least ``champion_min_live_dates`` of them), else its own validation figure.
    """

    horizon: int = 5
    model: str = "lgbm"  # a name in models.factory.MODELS
    label_kind: LabelKind = "market"
    features: tuple[str, ...] | None = None  # None = every registered feature
    label_horizons: tuple[int, ...] = DEFAULT_HORIZONS  # the labels stage's horizons
    label_kinds: tuple[LabelKind, ...] = ("raw", "market", "sector")
    ic_horizons: tuple[int, ...] = IC_HORIZONS  # the diagnostics stage's horizons
    train_sessions: int = 504
    min_train_sessions: int = 126
    valid_sessions: int = 63
    embargo: int = 2
    retrain_every: int = 5
    params: Mapping[str, Any] = field(default_factory=dict)
    num_boost_round: int = 300
    early_stopping_rounds: int = 30
    margin: float = 0.005
    champion_min_live_dates: int = 20
    rule: UniverseRule = DEFAULT_RULE

    def model_spec(self) -> ModelSpec:
        """The model to fit: ``model`` with ``params`` and the round options."""
        return ModelSpec(
            self.model,
            {
                **self.params,
                "num_boost_round": self.num_boost_round,
                "early_stopping_rounds": self.early_stopping_rounds,
            },
        )

    def walk_forward(self, first_test: int | None = None) -> WalkForwardConfig:
        return WalkForwardConfig(
            horizon=self.horizon,
            retrain_every=self.retrain_every,
            train_days=self.train_sessions,
            min_train_days=self.min_train_sessions,
            valid_days=self.valid_sessions,
            embargo=self.embargo,
            first_test=first_test,
        )


DEFAULT_CONFIG = ResearchConfig()


@dataclass(frozen=True)
class ResearchContext:
    """What a research stage receives (a :class:`~pipelines.lake.interface.StageContext`).

    ``now()`` is the knowledge time the stage reads at and stamps its outputs with: the
    session's decision cutoff, or ``clock()`` when a clock is given.
    """

    store: Lake
    day: dt.date
    config: ResearchConfig = DEFAULT_CONFIG
    clock: Clock | None = None

    def now(self) -> dt.datetime:
        return self.clock() if self.clock is not None else decision_cutoff(self.day)

    @classmethod
    def from_settings(
        cls, day: dt.date, config: ResearchConfig = DEFAULT_CONFIG
    ) -> ResearchContext:
        """The context of session ``day`` on the configured lake."""
        return cls(Lake.from_settings(), day, config)

    def with_features(self, names: Sequence[str] | None) -> ResearchContext:
        """The same context restricted to features ``names`` (None: every registered one)."""
        chosen = None if names is None else tuple(names)
        return dataclasses.replace(self, config=dataclasses.replace(self.config, features=chosen))


# --- helpers ------------------------------------------------------------------------------


def _specs(names: Sequence[str] | None) -> dict[str, FeatureSpec]:
    table = registry()
    chosen = list(table) if names is None else list(names)
    unknown = [n for n in chosen if n not in table]
    if unknown:
        raise UnknownFeatureError(f"unknown features {unknown} (registered: {sorted(table)})")
    return {n: table[n] for n in chosen}


def _available(
    lake: Lake, specs: Mapping[str, FeatureSpec], known_at: dt.datetime | None
) -> tuple[dict[str, FeatureSpec], list[FeatureSkip]]:
    """``specs`` whose input tables hold rows known at ``known_at``, and the skips."""
    return partition(specs, empty_input_tables(lake, known_at))


def _write_skips(ctx: ResearchContext, skips: Sequence[FeatureSkip], model_id: str = "") -> int:
    """Record ``skips`` in ``research_diagnostics`` for the session (for the report)."""
    rows = dg.skipped_feature_rows(skips, model_id)
    return _write(ctx, "research_diagnostics", rows.assign(valid_date=ctx.day, known_at=ctx.now()))


def _feature_frames(panel: Panel, specs: Mapping[str, FeatureSpec]) -> dict[str, pd.DataFrame]:
    """Every feature of ``specs`` over the whole panel (wide), in ``specs`` order."""
    return {name: compute_feature(spec, panel) for name, spec in specs.items()}


def session_features(
    history: PanelHistory,
    specs: Mapping[str, FeatureSpec],
    since: int = 0,
    carry: FitCarry | None = None,
) -> dict[str, pd.DataFrame]:
    """Every feature of ``specs`` with row ``s`` as :func:`compute_features` computes it on
    session ``s``: from the history as known at ``s``'s cutoff (corrections and late prints
    published by then). Only the (session, feature) pairs whose lookback window a revision
    reaches are recomputed, one vectorized pass per interval of sessions that know the
    same lake (:meth:`PanelHistory.session_rows`); the others are the first-print values.

    With ``since``, the first-print values of the rows before panel row ``since`` are left
    NaN (for a caller that uses none of them): each feature reads only its own lookback
    before ``since`` — the same values for the other rows, bit for bit, by the features'
    lookback contract (:func:`~pipelines.features.registry.compute_feature`).

    With a ``carry`` (a backtest worker's, :mod:`pipelines.research.carry`), the first-print
    rows the previous fit computed from the same panel rows are taken from it: the same
    values, bit for bit."""

    def at_session(state: Panel, names: list[str]) -> dict[str, pd.DataFrame]:
        return {n: compute_feature(specs[n], state) for n in names}

    lookbacks = {name: spec.lookback for name, spec in specs.items()}
    panel = history.panel
    if since <= 0:
        frames = _feature_frames(panel, specs)
    elif carry is not None:
        frames = carry.features(panel, specs, since, compute_feature)
    else:
        # one window per lookback (the rows compute_feature(..., dates=) would read), so
        # the features over the same rows share its cache of derived arrays (the market
        # regression, sector codes, ...) as they do over a whole panel: same rows, same values
        windows: dict[int, Panel] = {}
        frames = {}
        for name, spec in specs.items():
            window = windows.get(spec.lookback)
            if window is None:
                window = windows[spec.lookback] = panel.iloc(
                    since - spec.lookback, len(panel.dates)
                )
            rows = window.dates.get_indexer(panel.dates[since:])
            frames[name] = compute_feature(spec, window).iloc[rows].reindex(index=panel.dates)
    return history.session_rows(frames, lookbacks, at_session)


@dataclass(frozen=True)
class SessionData:
    """A research history's model inputs, each session's row as known at its cutoff: the
    membership panel, the features and the label (usable from ``t + horizon``)."""

    panel: Panel
    features: dict[str, pd.DataFrame]
    label: LabelSet

    def dataset(self, carry: FitCarry | None = None) -> ResearchDataset:
        """The normalised dataset (with ``carry``: rows normalised from equal input by the
        previous fit taken from it, :meth:`FitCarry.normalized`)."""
        return build_dataset(self.panel, self.features, self.label, carry=carry)

    def until(self, row: int, securities: pd.Index) -> SessionData:
        """What a history ending at panel row ``row`` holds (given its columns
        ``securities``, :meth:`PanelHistory.securities_through`): the rows up to ``row`` and
        no label that needs a later session. Every row is as its own session knew it, so
        the values are those of that shorter history bit for bit."""
        cols = _columns(self.panel, securities)
        label = self.label
        values = label.values.iloc[: row + 1, cols].copy()
        # row t's label is computed at t + horizon: past the last row, it is not there yet
        values.iloc[max(0, row + 1 - label.horizon) :] = np.nan
        panel = _panel_until(self.panel, row, securities)
        return SessionData(
            panel,
            {name: frame.iloc[: row + 1, cols] for name, frame in self.features.items()},
            dataclasses.replace(
                label,
                values=values,
                available_date=label_available_date(panel.dates, label.horizon),
            ),
        )

    def since(self, row: int) -> SessionData:
        """The rows from panel row ``row`` on (each row's values are its own session's)."""

        def cut(frame: pd.DataFrame) -> pd.DataFrame:
            return frame.iloc[row:]

        label = self.label
        return SessionData(
            Panel(
                self.panel.dates[row:],
                self.panel.securities,
                {k: cut(v) for k, v in self.panel.fields.items()},
            ),
            {name: cut(frame) for name, frame in self.features.items()},
            dataclasses.replace(
                label, values=cut(label.values), available_date=label.available_date.iloc[row:]
            ),
        )


def _columns(panel: Panel, securities: pd.Index) -> np.ndarray:
    cols = panel.securities.get_indexer(securities)
    if (cols < 0).any():
        raise ValueError("securities outside the panel")
    return np.asarray(cols)


def _panel_until(panel: Panel, row: int, securities: pd.Index) -> Panel:
    """Rows up to ``row`` of ``panel`` over ``securities`` (a subset of its own)."""
    cols = _columns(panel, securities)
    fields = {k: v.iloc[: row + 1, cols] for k, v in panel.fields.items()}
    return Panel(panel.dates[: row + 1], panel.securities[cols], fields)


def session_data(
    history: PanelHistory,
    specs: Mapping[str, FeatureSpec],
    horizon: int,
    kind: LabelKind,
    since: int = 0,
    carry: FitCarry | None = None,
) -> SessionData:
    """Features, label and membership of ``history`` as each session knew them (features
    of the rows before ``since`` left NaN: :func:`session_features`)."""
    return SessionData(
        history.session_panel(),
        session_features(history, specs, since, carry),
        history.label(horizon, kind),
    )


def _write(ctx: ResearchContext, table: str, frame: pd.DataFrame) -> int:
    """Append ``frame`` (content-hash batch id: re-running writes nothing); rows written."""
    if not len(frame):
        return 0
    result = ctx.store.write(table, frame)
    return result.rows if result.written else 0


def _members(panel: Panel, day: dt.date) -> np.ndarray:
    return panel.universe()[panel.position(pd.Timestamp(day))]


def _day_panel(ctx: ResearchContext, lookback: int) -> Panel:
    """Panel of the ``lookback + 1`` sessions ending at ``ctx.day``."""
    day = trading_calendar().require_session(ctx.day)
    start = trading_calendar().back(day, lookback + 1)[0]
    # the window as known now: corrections of earlier days and late prints included
    return build_panel(ctx.store, start, day, rule=ctx.config.rule, view=ctx.now())


# --- universe -----------------------------------------------------------------------------


def universe_frame(panel: Panel, day: dt.date) -> pd.DataFrame:
    """Universe members at ``day`` with sector, close, ADV and market cap."""
    t = panel.position(pd.Timestamp(day))
    mask = _members(panel, day)
    secs = panel.securities[mask]

    def row(name: str) -> np.ndarray:
        return panel.field(name).iloc[t].to_numpy()[mask]

    return pd.DataFrame(
        {
            "security_id": secs.astype(str),
            "sector": row("sector"),
            "close": row("close").astype(np.float64),
            "adv_21d": row("adv_21d").astype(np.float64),
            "market_cap": row("market_cap").astype(np.float64),
        }
    )


def _unpriced(ctx: ResearchContext, panel: Panel, stage: str) -> bool:
    """True when the session has no close known at its cutoff (its vendor folder came late
    or not at all): one WARNING line and one ``research_diagnostics`` row say so, so the
    stage's empty output is never silent. The late prices reach the next session."""
    close = panel.field("close").iloc[panel.position(pd.Timestamp(ctx.day))]
    if close.notna().any():
        return False
    from pipelines.ingest.quarantine import holding_note

    held = holding_note(ctx.store, ctx.day, "prices")
    reason = (
        f"no close for {ctx.day} known at {ctx.now().isoformat()} (late or missing prices{held})"
    )
    log.warning("research %s for %s: nothing computed: %s", stage, ctx.day, reason)
    row = pd.DataFrame(
        {
            "model_id": [""],
            "kind": UNPRICED_SESSION_KIND,
            "name": stage,
            "horizon": np.int32(0),
            "bucket": reason,
            "value": np.nan,
            "n": np.int64(0),
        }
    )
    _write(ctx, "research_diagnostics", row.assign(valid_date=ctx.day, known_at=ctx.now()))
    return True


def compute_universe(ctx: ResearchContext) -> pd.DataFrame:
    """Write and return the universe of the session (point-in-time, survivorship-free).

    A session without a close known at its cutoff has no universe: it writes none and
    says why (:func:`_unpriced`)."""
    panel = _day_panel(ctx, 0)
    frame = universe_frame(panel, ctx.day)
    if _unpriced(ctx, panel, "universe"):
        return frame
    _write(ctx, "universe", frame.assign(valid_date=ctx.day, known_at=ctx.now()))
    return frame


# --- features -----------------------------------------------------------------------------


def features_frame(panel: Panel, day: dt.date, specs: Mapping[str, FeatureSpec]) -> pd.DataFrame:
    """Long raw values ``(security_id, feature, value)`` of universe members at ``day``.

    Each feature reads only its declared lookback window of the panel, so the values equal
    the full-history computation bit for bit.
    """
    mask = _members(panel, day)
    secs = panel.securities[mask].astype(str)
    frames = []
    for name, spec in specs.items():
        values = compute_feature(spec, panel, dates=[pd.Timestamp(day)]).to_numpy()[0][mask]
        ok = np.isfinite(values)
        frames.append(pd.DataFrame({"security_id": secs[ok], "feature": name, "value": values[ok]}))
    if not frames:
        return pd.DataFrame({"security_id": [], "feature": [], "value": []})
    return pd.concat(frames, ignore_index=True)


def compute_features(ctx: ResearchContext) -> pd.DataFrame:
    """Compute ``ctx.config.features`` (None: all registered) for the session into ``features``.

    Loads exactly the panel window the longest lookback needs. Returns the long frame.
    A feature whose data is absent (see the module docstring) is skipped, not failed: it
    adds no rows, one logged line and one ``research_diagnostics`` row saying why, so a
    DAG task computing only that feature succeeds with 0 rows.
    """
    specs, skipped = _available(ctx.store, _specs(ctx.config.features), ctx.now())
    lookback = max((s.lookback for s in specs.values()), default=0)
    panel = _day_panel(ctx, lookback)
    specs, empty = partition(specs, panel=panel, at=panel.position(pd.Timestamp(ctx.day)))
    skipped += empty
    frame = features_frame(panel, ctx.day, specs)
    _write(ctx, "features", frame.assign(valid_date=ctx.day, known_at=ctx.now()))
    _write_skips(ctx, skipped)
    return frame


def stored_features(lake: Lake, day: dt.date, known_at: dt.datetime | None = None) -> pd.DataFrame:
    """The ``features`` rows of ``day`` as known at ``known_at`` (default: its cutoff), long."""
    if lake.table("features") is None:
        return pd.DataFrame({"security_id": [], "feature": [], "value": []})
    table = lake.as_of(
        "features",
        known_at=known_at or decision_cutoff(day),
        valid_at=day,
        columns=["security_id", "feature", "value"],
    )
    return table.select(["security_id", "feature", "value"]).to_pandas()


def stored_universe(
    lake: Lake, day: dt.date, known_at: dt.datetime | None = None
) -> pd.DataFrame | None:
    """The ``universe`` rows of ``day`` as known at ``known_at`` (default: its cutoff);
    None if never computed."""
    if lake.table("universe") is None:
        return None
    known = known_at or decision_cutoff(day)
    rows = lake.as_of("universe", known_at=known, valid_at=day).to_pandas()
    return rows if len(rows) else None


# --- labels -------------------------------------------------------------------------------


#: Sessions back that :func:`compute_labels` looks for a session whose prices came after
#: its cutoff: the labels ending on it could not be computed then, and are written once known.
LABEL_CATCH_UP = 5


def _late_sessions(ctx: ResearchContext, sessions: Sequence[dt.date]) -> list[dt.date]:
    """The ``sessions`` without any price known at their own cutoff (a late or missing folder)."""
    return [
        e
        for e in sessions
        if ctx.store.as_of(
            "prices", known_at=decision_cutoff(e), valid_at=e, columns=["security_id"]
        ).num_rows
        == 0
    ]


def compute_labels(ctx: ResearchContext) -> pd.DataFrame:
    """Append the labels that became known at the session's close: label date ``day − h``
    for each h of ``ctx.config.label_horizons`` and kind of ``label_kinds``, read as known
    at the session's cutoff (a price correction published by then included).

    Labels ending on an earlier session whose prices came after its cutoff (up to
    :data:`LABEL_CATCH_UP` sessions back) could not be computed on it; they are computed
    and written now, when they became known. A session without a close known at its
    cutoff writes no label and says why (:func:`_unpriced`).
    """
    horizons, kinds = ctx.config.label_horizons, ctx.config.label_kinds
    panel = _day_panel(ctx, max(horizons) + LABEL_CATCH_UP)
    if _unpriced(ctx, panel, "labels"):
        return pd.DataFrame(
            {"security_id": [], "label": [], "horizon": [], "value": [], "valid_date": []}
        )
    last = len(panel.dates) - 1
    earlier = [d.date() for d in panel.dates[max(0, last - LABEL_CATCH_UP) : last]]
    late = {panel.position(pd.Timestamp(e)) for e in _late_sessions(ctx, earlier)}
    frames = []
    for h in horizons:
        ends = [last, *sorted(late)]
        for kind in kinds:
            label = make_label(panel, h, kind)
            for end in ends:
                t = end - h
                if t < 0:
                    continue
                values = label.values.iloc[t].to_numpy()
                ok = np.isfinite(values)
                frames.append(
                    pd.DataFrame(
                        {
                            "security_id": panel.securities[ok].astype(str),
                            "label": label.name,
                            "horizon": np.int32(h),
                            "value": values[ok],
                            "valid_date": panel.dates[t].date(),
                        }
                    )
                )
    frame = pd.concat(frames, ignore_index=True)
    _write(ctx, "labels", frame.assign(known_at=ctx.now()))
    return frame


# --- scoring ------------------------------------------------------------------------------


def feature_matrix(ctx: ResearchContext, names: Sequence[str]) -> tuple[pd.Index, np.ndarray]:
    """(universe members, (N, F) float32 rank-gaussed features) of the session from the lake.

    Reads the ``features`` and ``universe`` tables as of ``ctx.now()``; whatever is missing
    (a feature task that has not run) is computed and written first. Normalization is the
    same per-date rank-gauss the training dataset uses, so a day scored here matches the
    walk-forward score of that day bit for bit.
    """
    lake, day, known = ctx.store, ctx.day, ctx.now()
    universe = stored_universe(lake, day, known)
    if universe is None:
        universe = compute_universe(ctx)
    members = pd.Index(sorted(universe["security_id"].astype(str)), dtype=object)
    long = stored_features(lake, day, known)
    missing = [n for n in names if n not in set(long["feature"])]
    if missing:
        compute_features(ctx.with_features(missing))
        long = stored_features(lake, day, known)
    wide = long.pivot(index="security_id", columns="feature", values="value")
    wide = wide.reindex(index=members, columns=list(names))
    raw = wide.to_numpy(dtype=np.float64)
    inside = np.ones((1, len(members)), dtype=bool)
    X = np.empty((len(members), len(names)), dtype=np.float32)
    for f in range(len(names)):
        X[:, f] = rank_gauss(raw[:, f][None, :], inside)[0]
    return members, X


def score_day(ctx: ResearchContext, model_id: str | None = None) -> pd.DataFrame:
    """Score the session's universe with ``model_id`` (default: the champion known at
    ``ctx.now()``).

    Writes and returns ``(security_id, score, model_id, valid_date, known_at)``. Raises
    :class:`NoChampionError` when no model has been promoted by then.
    """
    lake, day, known = ctx.store, ctx.day, ctx.now()
    chosen = model_id or champion_id(lake, known, day)
    if chosen is None:
        raise NoChampionError(f"no champion model known at {known.isoformat()} for {day}")
    stored = load_model(lake, chosen, None if model_id else known)
    model = restore_model(stored.record.spec, stored.record.booster)
    members, X = feature_matrix(ctx, stored.record.features)
    scores = model.predict_matrix(X) if len(members) else np.empty(0)
    frame = pd.DataFrame(
        {
            "security_id": members.astype(str),
            "score": scores,
            "model_id": chosen,
            "valid_date": day,
            "known_at": known,
        }
    )
    _write(ctx, "alpha_scores", frame)
    return frame


# --- training -----------------------------------------------------------------------------


def _rank_ic(pred: pd.DataFrame, truth: pd.DataFrame) -> tuple[float, int]:
    """Mean per-date rank IC of two wide frames on the same axes; (mean, dates)."""
    stacked: pd.Series = pred.stack()  # type: ignore[assignment]
    scores = stacked.rename("score").reset_index()
    scores.columns = pd.Index(["date", "security_id", "score"])
    scores["model_id"] = "m"
    ic = dg.ic_by_date(scores, truth, 0)
    if not len(ic):
        return float("nan"), 0
    return float(ic["rank_ic"].mean()), len(ic)


@dataclass(frozen=True)
class RetrainResult:
    """What :func:`retrain` did: the new record, the decision and the champion after it."""

    record: ModelRecord
    promoted: bool
    reason: str
    champion_id: str
    challenger_metric: float
    champion_metric: float | None
    importance: pd.DataFrame


def _training_history(
    lake: Lake,
    day: dt.date,
    config: ResearchConfig,
    specs: Mapping[str, FeatureSpec],
    known_at: dt.datetime,
    through: dt.date | None = None,
) -> PanelHistory:
    """The history a model fit at ``day`` trains on, read as known at ``known_at``
    (continued to session ``through`` when given: the sessions the model will score)."""
    lookback = max((s.lookback for s in specs.values()), default=0)
    gap = config.horizon + config.embargo
    rows = config.train_sessions + gap + config.valid_sessions + gap + lookback + 1
    start = trading_calendar().back(day, rows)[0]
    return load_history(lake, start, through or day, known_at=known_at, rule=config.rule)


def _fit_split(n: int, last: pd.Timestamp, config: ResearchConfig) -> Split:
    """The split of a fit at the last of ``n`` sessions (``last``)."""
    splits = walk_forward_splits(n, config.walk_forward(first_test=n - 1))
    if not splits or splits[-1].test[0] != n - 1:
        raise InsufficientHistoryError(
            f"not enough history to train at {last.date()}: {n} sessions in the panel"
        )
    return splits[-1]


def _shift(split: Split, rows: int) -> Split:
    """``split`` with its positions ``rows`` earlier (the same sessions, fewer rows before)."""
    return Split(
        train=(split.train[0] - rows, split.train[1] - rows),
        valid=(split.valid[0] - rows, split.valid[1] - rows),
        test=(split.test[0] - rows, split.test[1] - rows),
    )


@dataclass(frozen=True)
class FittedModel:
    """A model fit at a session's cutoff (:func:`fit_at`): the model, its registry record
    (validation rank IC in its metrics), the dataset and split it was fit on, the label, the
    panel's first session (what a rebuild reloads from) and the features skipped."""

    model: Model
    record: ModelRecord
    dataset: ResearchDataset
    split: Split
    label: LabelSet
    panel_start: dt.date
    skipped: list[FeatureSkip]


def fit_at(lake: Lake, day: dt.date, config: ResearchConfig, known: dt.datetime) -> FittedModel:
    """Fit the configured model at ``day`` on the research history as known at ``known``:
    the training code of :func:`retrain` (the ``model_retrain`` DAG) and of the backtest's
    walk-forward retrains (:func:`fit_and_score`), which must not differ. Writes nothing.

    Raises :class:`InsufficientHistoryError` when the lake holds too few sessions before
    ``day`` and :class:`NoFeaturesError` when every feature is skipped.
    """
    specs, skipped = _available(lake, _specs(config.features), known)
    history = _training_history(lake, day, config, specs, known)
    specs = _computable(specs, history.panel, skipped, day)
    data = session_data(history, specs, config.horizon, config.label_kind)
    return _fit(data, day, config, known, skipped)


def fit_and_score(
    lake: Lake,
    day: dt.date,
    last: dt.date,
    config: ResearchConfig,
    carry: FitCarry | None = None,
) -> tuple[FittedModel, pd.DataFrame]:
    """:func:`fit_at` at ``day``'s cutoff and :func:`score_sessions` of ``[day, last]`` by
    its model, from one research history read through ``last`` (as known at its cutoff).

    Every row of that history is as its own session knew it (:mod:`pipelines.pit.history`),
    so its rows up to ``day`` over the securities of a history ending there
    (:meth:`SessionData.until`) are the rows :func:`fit_at` trains on, bit for bit, and
    its later rows the ones :func:`score_sessions` scores: one panel read and one feature
    pass serve both (a backtest retrain). Raises as :func:`fit_at` does.

    A backtest worker fitting its blocks in order passes its ``carry``: the previous fit's
    features and normalised rows are reused where their inputs are bitwise equal
    (:mod:`pipelines.research.carry`), so the model and scores are those of a fresh fit.
    """
    known = decision_cutoff(day)
    specs, skipped = _available(lake, _specs(config.features), known)
    history = _training_history(lake, day, config, specs, decision_cutoff(last), through=last)
    row = history.panel.position(pd.Timestamp(day))
    securities = history.securities_through(row)
    specs = _computable(specs, _panel_until(history.panel, row, securities), skipped, day)
    # the fit reads no feature row before its training fold (_fit), and the scores none
    # before ``row``: features start at the fold (~30% fewer rows for short lookbacks)
    first = _fit_split(row + 1, history.panel.dates[row], config).train[0]
    if carry is None:
        data = session_data(history, specs, config.horizon, config.label_kind, since=first)
        fitted = _fit(data.until(row, securities), day, config, known, skipped)
        return fitted, _scores(fitted.model, fitted.record, data.since(row))
    with carry.lock:
        carry.start_fit()
        try:
            data = session_data(history, specs, config.horizon, config.label_kind, first, carry)
            fitted = _fit(data.until(row, securities), day, config, known, skipped, carry)
        finally:
            carry.end_fit()
    return fitted, _scores(fitted.model, fitted.record, data.since(row))


def _computable(
    specs: Mapping[str, FeatureSpec], panel: Panel, skipped: list[FeatureSkip], day: dt.date
) -> dict[str, FeatureSpec]:
    """``specs`` with a value in ``panel`` (the skipped ones added to ``skipped``);
    :class:`NoFeaturesError` when none is left."""
    kept, empty = partition(specs, panel=panel)
    skipped += empty
    if not kept:
        raise NoFeaturesError(
            f"nothing to train on at {day}: every feature skipped "
            f"({'; '.join(str(s) for s in skipped)})"
        )
    return kept


def _fit(
    data: SessionData,
    day: dt.date,
    config: ResearchConfig,
    known: dt.datetime,
    skipped: list[FeatureSkip],
    carry: FitCarry | None = None,
) -> FittedModel:
    """The model fit at ``day`` on ``data`` (a history ending at ``day``; ``carry``:
    :meth:`SessionData.dataset`)."""
    label = data.label
    split = _fit_split(len(data.panel.dates), data.panel.dates[-1], config)
    # rows before the training fold only warm the features' lookbacks up: the dataset (its
    # per-date normalization) starts at the fold, the same rows and values for the fit
    first = split.train[0]
    dataset = (data.since(first) if first else data).dataset(carry)
    split = _shift(split, first)
    model, record = fit_split(dataset, split, config.model_spec(), known.isoformat())
    valid = dataset.with_segments(valid=split.valid)
    pred = model.predict(valid, "valid")
    # the validation rows' labels as known at the fit day (masking the whole history's
    # rows first cost more than the rank IC itself)
    rows = dataclasses.replace(
        label,
        values=label.values.reindex(index=pred.index),
        available_date=label.available_date.reindex(index=pred.index),
    )
    truth = rows.usable_at(pd.Timestamp(day))
    oos, n_dates = _rank_ic(pred, truth)
    record = dataclasses.replace(record, created_at=known).with_metrics(
        oos_rank_ic=oos, oos_dates=float(n_dates)
    )
    return FittedModel(model, record, dataset, split, label, data.panel.dates[0].date(), skipped)


def retrain(ctx: ResearchContext) -> RetrainResult:
    """Fit a challenger at the session's close, register it, and decide champion/challenger.

    It trains (:func:`fit_at`) on the research history as each session knew it (features
    of session ``t`` and labels usable at ``t + h`` include the corrections known by then,
    as the stages of those sessions computed them; :mod:`pipelines.pit.history`), read as
    known at the session's cutoff. The model is deterministic in (data, features, params,
    seed); its registry entry records the training/validation windows, features, params,
    metrics, the content hash of the training rows and the cutoff they were read at, and
    ``model_id`` is a hash of that content — data landing later changes nothing — so
    :func:`rebuild_model` reproduces it bit for bit.
    """
    lake, day, config, known = ctx.store, ctx.day, ctx.config, ctx.now()
    fitted = fit_at(lake, day, config, known)
    model, record, dataset, split = fitted.model, fitted.record, fitted.dataset, fitted.split
    label, skipped, oos = fitted.label, fitted.skipped, fitted.record.metrics["oos_rank_ic"]
    save_model(lake, record, day, fitted.panel_start, known)
    valid = dataset.with_segments(valid=split.valid)

    X_valid, _, _ = valid.matrix("valid", labelled=False)
    importance = dg.feature_importance(
        model, dg.even_sample(X_valid, dg.IMPORTANCE_SAMPLE), dataset.feature_names, record.model_id
    )
    _write(ctx, "research_diagnostics", _importance_rows(importance, day, known))
    _write_skips(ctx, skipped, record.model_id)

    current = champion_id(lake, known, day)
    champ_metric: float | None = None
    if current is None:
        promoted, reason = True, "no champion"
    elif current == record.model_id:
        promoted, reason, champ_metric = False, "challenger is the champion", oos
    else:
        champ_metric = _champion_metric(ctx, current, label)
        promoted = bool(np.isfinite(oos) and oos > champ_metric + config.margin)
        op = ">" if promoted else "<="
        reason = f"oos_rank_ic {oos:.4f} {op} {champ_metric:.4f} + {config.margin}"
    winner = record.model_id if promoted or current is None else str(current)
    # the decision takes effect from the next session: a score of ``day`` never depends on
    # whether it was computed before or after this retrain
    record_decision(
        lake,
        trading_calendar().offset(day, 1),
        known,
        champion=winner,
        challenger=record.model_id,
        promoted=promoted,
        reason=reason,
        challenger_metric=oos,
        champion_metric=champ_metric,
    )
    return RetrainResult(record, promoted, reason, winner, oos, champ_metric, importance)


def _champion_metric(ctx: ResearchContext, model_id: str, label: Any) -> float:
    """The champion's live rank IC over its matured scores, else its validation rank IC."""
    lake, day, config, known = ctx.store, ctx.day, ctx.config, ctx.now()
    truth = label.usable_at(pd.Timestamp(day))
    if lake.table("alpha_scores") is not None:
        start = truth.index[0].date()
        rows = lake.as_of("alpha_scores", known_at=known, valid_at=(start, day)).to_pandas()
        rows = rows[rows["model_id"] == model_id]
        if len(rows):
            wide = rows.pivot(index="valid_date", columns="security_id", values="score")
            wide.index = pd.DatetimeIndex(pd.to_datetime(wide.index))
            wide = wide.reindex(columns=truth.columns)
            live, n = _rank_ic(wide, truth.reindex(index=wide.index))
            if n >= config.champion_min_live_dates and np.isfinite(live):
                return live
    stored = load_model(lake, model_id, known)
    return float(stored.record.metrics.get("oos_rank_ic", float("-inf")))


def rebuild_model(lake: Lake, model_id: str, config: ResearchConfig = DEFAULT_CONFIG) -> Model:
    """Re-fit ``model_id`` from its registry entry: the history as known at its training
    cutoff, the same rows and params.

    The rebuilt model's artifact equals the stored one (checked by the tests). The
    recorded features are used as they are (no skipping: they were computable then).
    """
    from models.walk_forward import rebuild

    stored: StoredModel = load_model(lake, model_id)
    rec = stored.record
    specs = _specs(rec.features)
    known = (
        dt.datetime.fromisoformat(rec.inputs_known_at)
        if rec.inputs_known_at
        else decision_cutoff(stored.fit_day)
    )
    history = load_history(lake, stored.panel_start, stored.fit_day, known, config.rule)
    horizon, kind = _label_of(rec)
    return rebuild(rec, session_data(history, specs, horizon, kind).dataset())


def _label_of(record: ModelRecord) -> tuple[int, LabelKind]:
    """The horizon and kind of the label a record's model was fit on."""
    horizon = int(record.label.split("_")[2].rstrip("d"))
    kind: LabelKind = record.label.rsplit("_", 1)[1]  # type: ignore[assignment]
    return horizon, kind


def score_sessions(
    lake: Lake,
    first: dt.date,
    last: dt.date,
    record: ModelRecord,
    rule: UniverseRule = DEFAULT_RULE,
) -> pd.DataFrame:
    """Scores of every session in ``[first, last]`` by the model of ``record``, restored from
    its artifact as :func:`score_day` restores it: each session's universe and features as
    that session knew them at its cutoff (:func:`session_features`, the rows
    :func:`compute_features` writes on it), rank-gaussed per session as in training, so a
    session's scores depend on nothing published after its cutoff. Writes nothing.

    Long ``[date, security_id, score, model_id]``, ordered by date then security.
    """
    model = restore_model(record.spec, record.booster)
    specs = _specs(record.features)
    lookback = max((s.lookback for s in specs.values()), default=0)
    start = trading_calendar().back(first, lookback + 1)[0]
    history = load_history(lake, start, last, known_at=decision_cutoff(last), rule=rule)
    horizon, kind = _label_of(record)
    data = session_data(history, specs, horizon, kind)
    lo = int(np.searchsorted(data.panel.dates.values, np.datetime64(pd.Timestamp(first))))
    return _scores(model, record, data.since(lo))


def _scores(model: Model, record: ModelRecord, data: SessionData) -> pd.DataFrame:
    """Long ``[date, security_id, score, model_id]`` of every row of ``data`` by ``model``
    (of ``record``), ordered by date then security."""
    dataset = data.dataset()
    ds = dataset.with_segments(test=(0, len(dataset.dates)))
    X, _, idx = ds.matrix("test", labelled=False)
    frame = pd.DataFrame(
        {
            "date": dataset.dates[idx[0]],
            "security_id": dataset.securities[idx[1]].astype(str),
            "score": model.predict_matrix(X) if len(X) else np.empty(0),
            "model_id": record.model_id,
        }
    )
    return frame.sort_values(["date", "security_id"], kind="stable").reset_index(drop=True)


def models_known(lake: Lake, day: dt.date) -> list[StoredModel]:
    """Every registered model fit by ``day`` (as known at its cutoff)."""
    return list_models(lake, decision_cutoff(day), day)


# --- diagnostics --------------------------------------------------------------------------


def _importance_rows(imp: pd.DataFrame, day: dt.date, known: dt.datetime) -> pd.DataFrame:
    measures = {"gain": "gain", "split": "split", "gain_share": "gain_share"}
    measures["mean_abs_contrib"] = "pred_contrib"
    frames = [
        pd.DataFrame(
            {
                "model_id": imp["model_id"].astype(str),
                "kind": "importance",
                "name": imp["feature"].astype(str),
                "horizon": np.int32(0),
                "bucket": bucket,
                "value": imp[column].astype(np.float64),
                "n": np.int64(0),
            }
        )
        for column, bucket in measures.items()
    ]
    return pd.concat(frames, ignore_index=True).assign(valid_date=day, known_at=known)


def diagnostics_rows(
    scores: pd.DataFrame, panel: Panel, horizons: Sequence[int] = IC_HORIZONS
) -> pd.DataFrame:
    """IC / rank IC / quantile-return rows for long scores ``[date, security_id, score, model_id]``.

    Forward returns come from ``panel`` (raw, over (t, t + h]); dates whose h-day return has
    not matured inside the panel produce nothing.
    """
    frames = []
    for h in horizons:
        fwd = pd.DataFrame(forward_returns(panel, h), index=panel.dates, columns=panel.securities)
        ic = dg.ic_by_date(scores, fwd, h)
        for name in ("ic", "rank_ic"):
            frames.append(
                pd.DataFrame(
                    {
                        "valid_date": ic["date"].dt.date,
                        "model_id": ic["model_id"].astype(str),
                        "kind": "ic",
                        "name": name,
                        "horizon": np.int32(h),
                        "bucket": "",
                        "value": ic[name].astype(np.float64),
                        "n": ic["n"].astype(np.int64),
                    }
                )
            )
        q = dg.quantile_returns(scores, fwd, h, N_QUANTILES)
        if len(q):
            q["bucket"] = "Q" + q["quantile"].astype(str)
            wide = q.pivot_table(
                index=["date", "model_id"], columns="quantile", values="mean_return"
            )
            if {1, N_QUANTILES} <= set(wide.columns):
                spread = (wide[N_QUANTILES] - wide[1]).dropna().rename("mean_return")
                spread_rows = spread.reset_index().assign(
                    bucket=f"Q{N_QUANTILES}-Q1", n=np.int64(0)
                )
                q = pd.concat([q, spread_rows], ignore_index=True)
            frames.append(
                pd.DataFrame(
                    {
                        "valid_date": pd.to_datetime(q["date"]).dt.date,
                        "model_id": q["model_id"].astype(str),
                        "kind": "quantile",
                        "name": "mean_return",
                        "horizon": np.int32(h),
                        "bucket": q["bucket"].astype(str),
                        "value": q["mean_return"].astype(np.float64),
                        "n": q["n"].astype(np.int64),
                    }
                )
            )
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return out[np.isfinite(out["value"])] if len(out) else out


def diagnose(ctx: ResearchContext) -> pd.DataFrame:
    """Append diagnostics of every score date whose h-day return matured at the session's close.

    For each horizon h of ``ctx.config.ic_horizons`` the score date is ``day − h`` sessions; IC, rank IC and quantile
    returns are stored per (score date, model, h). ICIR and IC decay are aggregates of
    these rows (:func:`pipelines.research.report_lake.load_diagnostics`).
    """
    lake, day, known, horizons = ctx.store, ctx.day, ctx.now(), ctx.config.ic_horizons
    if lake.table("alpha_scores") is None:
        return pd.DataFrame()
    first = trading_calendar().offset(day, -max(horizons))
    rows = lake.as_of("alpha_scores", known_at=known, valid_at=(first, day)).to_pandas()
    wanted = {trading_calendar().offset(day, -h) for h in horizons}
    rows = rows[pd.to_datetime(rows["valid_date"]).dt.date.isin(wanted)]
    if not len(rows):
        return pd.DataFrame()
    panel = _day_panel(ctx, max(horizons))
    scores = pd.DataFrame(
        {
            "date": pd.to_datetime(rows["valid_date"]),
            "security_id": rows["security_id"].astype(str),
            "score": rows["score"],
            "model_id": rows["model_id"].astype(str),
        }
    )
    frame = diagnostics_rows(scores, panel, horizons)
    # keep exactly the (score date, horizon) pairs that matured today
    matured = {(trading_calendar().offset(day, -h), h) for h in horizons}
    keep = [
        (d, int(h)) in matured for d, h in zip(frame["valid_date"], frame["horizon"], strict=True)
    ]
    frame = frame[np.asarray(keep, dtype=bool)]
    _write(ctx, "research_diagnostics", frame.assign(known_at=known))
    return frame


# --- research walk-forward ----------------------------------------------------------------


@dataclass
class LakeWalkForward:
    """A walk-forward over a lake panel: scores, records, IC summary and the panel."""

    result: WalkForwardResult
    ic: pd.DataFrame
    summary: pd.DataFrame
    panel: Panel = field(repr=False)
    dataset: ResearchDataset = field(repr=False)
    skipped: list[FeatureSkip] = field(default_factory=list)


def walk_forward_on_lake(
    lake: Lake,
    start: dt.date,
    end: dt.date,
    config: ResearchConfig = DEFAULT_CONFIG,
    known_at: dt.datetime | None = None,
) -> LakeWalkForward:
    """Walk-forward of the configured model on the lake panel of ``[start, end]`` (no lake writes).

    Out-of-sample scores of every test block, their daily IC / rank IC against the
    market-residual forward return of ``config.horizon``, and the IC summary. Every
    session's features and label are as that session knew them (the history as known at
    its cutoff, capped at ``known_at``: :mod:`pipelines.pit.history`). Features whose data
    is absent in the lake as known at ``known_at`` (or in the panel) are skipped and
    listed in ``skipped``.
    """
    specs, skipped = _available(lake, _specs(config.features), known_at)
    history = load_history(lake, start, end, known_at=known_at, rule=config.rule)
    specs, empty = partition(specs, panel=history.panel)
    skipped += empty
    if not specs:
        raise NoFeaturesError(f"every feature skipped: {'; '.join(str(s) for s in skipped)}")
    data = session_data(history, specs, config.horizon, config.label_kind)
    panel, label, dataset = data.panel, data.label, data.dataset()
    splits = walk_forward_splits(len(panel.dates), config.walk_forward())
    result = run_walk_forward(dataset, splits, config.model_spec())
    ic = dg.ic_by_date(result.scores, label.values, config.horizon, model_label="walk_forward")
    return LakeWalkForward(result, ic, dg.ic_summary(ic), panel, dataset, skipped)


def _conforms(ctx: ResearchContext) -> StageContext:
    # mypy checks here that a ResearchContext is a StageContext (no runtime cost)
    return ctx
