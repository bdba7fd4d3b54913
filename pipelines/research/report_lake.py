"""The research report from the lake: stored diagnostics → tidy frames → one HTML page.

``research_diagnostics`` holds per (score date, model, horizon) IC, rank IC and quantile
returns of the live scores, and per model the feature importances; ICIR, IC decay and
quantile spreads are aggregates of those rows, computed here with
:mod:`pipelines.research.diagnostics`.

Live scores need ``h`` sessions to mature, so a young lake (the demo's) has none yet;
:func:`signal_ic` therefore also measures, over the last sessions of the research
history (each session's features and label as that session knew them,
:mod:`pipelines.pit.history`), the rank IC of every feature on its own and of every
registered model from its validation window on. :func:`model_table` lists the registry
with the champion/challenger decisions.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from models.factory import restore_model
from models.lake_store import list_models
from pipelines.features.availability import partition
from pipelines.features.registry import registry
from pipelines.lake import Lake
from pipelines.pit.dataset import build_dataset
from pipelines.pit.history import load_history
from pipelines.pit.lake_panel import empty_input_tables
from pipelines.research import diagnostics as dg
from pipelines.research.report import SignalIC, write_research_report
from pipelines.timeline import ALL_DATES, LATEST, decision_cutoff, trading_calendar

#: Sessions of research history the feature and model ICs are measured over (six months).
SIGNAL_IC_SESSIONS = 126


@dataclass(frozen=True)
class ResearchDiagnostics:
    """Frames in the shapes :func:`write_research_report` takes."""

    ic_daily: pd.DataFrame
    ic_stats: pd.DataFrame
    decay: pd.DataFrame
    quantiles: pd.DataFrame
    importance: pd.DataFrame
    #: features skipped by the research stages (:func:`dg.skipped_summary`)
    skipped: pd.DataFrame = field(default_factory=lambda: dg.skipped_summary(pd.DataFrame()))


def load_diagnostics(
    lake: Lake,
    start: dt.date = ALL_DATES[0],
    end: dt.date = ALL_DATES[1],
    horizon: int = 5,
    known_at: dt.datetime | None = None,
) -> ResearchDiagnostics:
    """Stored diagnostics for score dates in ``[start, end]`` as known at ``known_at``."""
    if lake.table("research_diagnostics") is None:
        rows = pd.DataFrame(
            columns=["valid_date", "model_id", "kind", "name", "horizon", "bucket", "value", "n"]
        )
    else:
        rows = lake.as_of(
            "research_diagnostics", known_at=known_at or LATEST, valid_at=(start, end)
        ).to_pandas()
    rows["date"] = pd.to_datetime(rows["valid_date"])

    ic_rows = rows[rows["kind"] == "ic"]
    if len(ic_rows):
        ic_daily = ic_rows.pivot_table(
            index=["date", "model_id", "horizon"], columns="name", values="value"
        ).reset_index()
        n = ic_rows[ic_rows["name"] == "rank_ic"].set_index(["date", "model_id", "horizon"])["n"]
        ic_daily = ic_daily.join(n, on=["date", "model_id", "horizon"])
        ic_daily.columns.name = None
        ic_daily["horizon"] = ic_daily["horizon"].astype(int)
        decay = dg.ic_summary(ic_daily)
        ic_stats = decay[decay["horizon"] == horizon].reset_index(drop=True)
        ic_main = ic_daily[ic_daily["horizon"] == horizon].reset_index(drop=True)
    else:
        ic_main = pd.DataFrame(columns=["date", "model_id", "horizon", "ic", "rank_ic", "n"])
        ic_stats = decay = pd.DataFrame()

    q_rows = rows[(rows["kind"] == "quantile") & rows["bucket"].str.fullmatch(r"Q\d+")]
    if len(q_rows):
        qret = q_rows.assign(quantile=q_rows["bucket"].str[1:].astype(int))[
            ["date", "model_id", "horizon", "quantile", "value", "n"]
        ].rename(columns={"value": "mean_return"})
        quantiles = dg.quantile_summary(qret)
    else:
        quantiles = pd.DataFrame()

    imp_rows = rows[rows["kind"] == "importance"]
    if len(imp_rows):
        importance = imp_rows.pivot_table(
            index=["model_id", "name"], columns="bucket", values="value"
        ).reset_index()
        importance.columns.name = None
        importance = importance.rename(
            columns={"name": "feature", "pred_contrib": "mean_abs_contrib"}
        )
    else:
        importance = pd.DataFrame()
    skipped = dg.skipped_summary(rows[rows["kind"] == dg.SKIPPED_FEATURE_KIND])
    return ResearchDiagnostics(ic_main, ic_stats, decay, quantiles, importance, skipped)


def _summary(daily: pd.DataFrame, column: str) -> pd.DataFrame:
    if not len(daily):
        return pd.DataFrame()
    out = dg.ic_summary(daily)
    out["t_stat"] = out["mean_rank_ic"] / out["rank_ic_se"]
    return out.rename(columns={"model_id": column})


def _long(wide: pd.DataFrame, name: str) -> pd.DataFrame:
    stacked = wide.stack().dropna()
    return pd.DataFrame(
        {
            "date": pd.DatetimeIndex(stacked.index.get_level_values(0)),
            "security_id": stacked.index.get_level_values(1).astype(str),
            "score": stacked.to_numpy(dtype=np.float64),
            "model_id": name,
        }
    )


def signal_ic(
    lake: Lake,
    end: dt.date | None = None,
    sessions: int = SIGNAL_IC_SESSIONS,
    horizons: tuple[int, ...] = dg.IC_DECAY_HORIZONS,
    known_at: dt.datetime | None = None,
) -> SignalIC:
    """Rank IC per session of every available feature and registered model against the
    label of each horizon (the training label: ``DEFAULT_CONFIG.label_kind`` forward
    return), over the ``sessions`` sessions ending at ``end`` (default: the last priced
    session known at ``known_at``).

    Point in time: session ``t``'s feature values are those ``t`` computed (the history as
    known at ``t``'s cutoff), its label the return as known at ``t + h``; dates whose
    label has not matured by ``known_at`` are left out. A model is measured from the
    first session after its training window (its validation window, then live).
    """
    from pipelines.research.stages import DEFAULT_CONFIG, session_features

    empty = SignalIC(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), None, None)
    known = known_at or LATEST
    if lake.table("prices") is None:
        return empty
    priced = lake.as_of("prices", known_at=known, valid_at=ALL_DATES, columns=["security_id"])
    if not priced.num_rows:
        return empty
    last = max(priced.column("valid_date").to_pylist())
    end = last if end is None else min(end, last)
    calendar = trading_calendar()
    end = calendar.back(end, 1)[0]
    start = calendar.back(end, sessions)[0]
    specs, _ = partition(dict(registry()), empty_input_tables(lake, known))
    # the history starts a feature lookback earlier, so every feature is defined at ``start``
    lookback = max((spec.lookback for spec in specs.values()), default=0)
    first = calendar.back(end, sessions + lookback)[0]
    history = load_history(lake, first, end, known_at=min(known, decision_cutoff(end)))
    specs, _ = partition(specs, panel=history.panel)
    if not specs:
        return empty
    feats = session_features(history, specs)
    panel = history.session_panel()
    labels = {h: history.label(h, DEFAULT_CONFIG.label_kind) for h in horizons}
    long_feats = pd.concat([_long(frame, name) for name, frame in feats.items()])
    feature_daily = pd.concat(
        [dg.ic_by_date(long_feats, labels[h].values, h) for h in horizons], ignore_index=True
    )

    model_frames = []
    models = list_models(lake, known, end)
    for stored in models:
        rec = stored.record
        if not set(rec.features) <= set(feats):
            continue  # a feature it needs is absent from this lake now
        after = pd.Timestamp(rec.train_end) + pd.Timedelta(days=1)
        i0 = int(panel.dates.searchsorted(max(after, pd.Timestamp(start))))
        if i0 >= len(panel.dates):
            continue
        data = build_dataset(panel, {f: feats[f] for f in rec.features}, labels[horizons[0]])
        model = restore_model(rec.spec, rec.booster)
        wide = model.predict(data.with_segments(test=(i0, len(panel.dates))), "test")
        scores = _long(wide, rec.model_id[:12])
        model_frames += [dg.ic_by_date(scores, labels[h].values, h) for h in horizons]
    model_daily = pd.concat(model_frames, ignore_index=True) if model_frames else pd.DataFrame()
    daily = pd.concat([feature_daily, model_daily], ignore_index=True)
    window = daily["date"] >= pd.Timestamp(start)
    daily = daily[window].reset_index(drop=True)
    feature_daily = daily[daily["model_id"].isin(list(feats))]
    model_daily = daily[~daily["model_id"].isin(list(feats))]
    return SignalIC(
        daily,
        _summary(feature_daily, "feature"),
        _summary(model_daily, "model_id"),
        start,
        end,
    )


def model_table(lake: Lake, known_at: dt.datetime | None = None) -> pd.DataFrame:
    """The model registry with the champion/challenger decisions, oldest first: id, fit
    session, windows, feature count, validation rank IC, and the decision that judged it."""
    known = known_at or LATEST
    models = list_models(lake, known, ALL_DATES[1])
    if not models:
        return pd.DataFrame()
    decisions = (
        lake.as_of("model_champion", known_at=known, valid_at=ALL_DATES).to_pandas()
        if lake.table("model_champion") is not None
        else pd.DataFrame(columns=["challenger_id", "model_id", "reason", "valid_date"])
    )
    champion = (
        str(decisions.sort_values("valid_date").iloc[-1]["model_id"]) if len(decisions) else ""
    )
    rows = []
    for stored in models:
        rec = stored.record
        judged = decisions[decisions["challenger_id"] == rec.model_id]
        last = judged.sort_values("valid_date").iloc[-1] if len(judged) else None
        rows.append(
            {
                "model_id": rec.model_id[:12],
                "role": "champion" if rec.model_id == champion else "challenger",
                "fit session": stored.fit_day.isoformat(),
                "train": f"{rec.train_start} .. {rec.train_end}",
                "validation": f"{rec.valid_start} .. {rec.valid_end}",
                "features": len(rec.features),
                "validation rank IC": rec.metrics.get("oos_rank_ic", float("nan")),
                "decision": "" if last is None else str(last["reason"]),
                "effective from": "" if last is None else str(last["valid_date"]),
            }
        )
    return pd.DataFrame(rows)


def score_dates(lake: Lake, known_at: dt.datetime | None = None) -> list[dt.date]:
    """The sessions ``alpha_scores`` holds scores for (as known at ``known_at``)."""
    if lake.table("alpha_scores") is None:
        return []
    rows = lake.as_of(
        "alpha_scores", known_at=known_at or LATEST, valid_at=ALL_DATES, columns=["model_id"]
    )
    return sorted(set(rows.column("valid_date").to_pylist()))


def write_lake_report(
    lake: Lake,
    path: str | Path,
    start: dt.date = ALL_DATES[0],
    end: dt.date = ALL_DATES[1],
    horizon: int = 5,
    signal_sessions: int = SIGNAL_IC_SESSIONS,
) -> Path:
    """Write the HTML research report for ``[start, end]``; returns its path."""
    diag = load_diagnostics(lake, start, end, horizon)
    signals = signal_ic(lake, None if end >= ALL_DATES[1] else end, signal_sessions)
    models = model_table(lake)
    dates = [d for d in score_dates(lake) if start <= d <= end]
    meta = {
        "lake": lake.location.root,
        "score dates": f"{dates[0]} .. {dates[-1]} ({len(dates)} sessions)" if dates else "none",
        "models": len(models),
        "champion": ", ".join(models.loc[models["role"] == "champion", "model_id"])
        if len(models)
        else "none",
        "signal IC sessions": f"{signals.start} .. {signals.end}" if signals.start else "none",
        "main horizon": horizon,
    }
    return write_research_report(
        path,
        diag.ic_daily,
        diag.ic_stats,
        diag.decay,
        diag.quantiles,
        diag.importance,
        meta=meta,
        skipped=diag.skipped,
        signals=signals,
        models=models,
        first_score=dates[0] if dates else None,
        horizon=horizon,
    )
