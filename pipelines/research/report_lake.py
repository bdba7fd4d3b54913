"""The research report from the lake: stored diagnostics → tidy frames → one HTML page.

``research_diagnostics`` holds per (score date, model, horizon) IC, rank IC and quantile
returns, and per model the feature importances; ICIR, IC decay and quantile spreads are
aggregates of those rows, computed here with :mod:`pipelines.research.diagnostics`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipelines.lake import Lake
from pipelines.research import diagnostics as dg
from pipelines.research.report import write_research_report
from pipelines.timeline import ALL_DATES, LATEST


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


def write_lake_report(
    lake: Lake,
    path: str | Path,
    start: dt.date = ALL_DATES[0],
    end: dt.date = ALL_DATES[1],
    horizon: int = 5,
) -> Path:
    """Write the HTML research report for ``[start, end]``; returns its path."""
    diag = load_diagnostics(lake, start, end, horizon)
    meta = {
        "lake": lake.location.root,
        "score dates": f"{diag.ic_daily['date'].min()} .. {diag.ic_daily['date'].max()}"
        if len(diag.ic_daily)
        else "none",
        "models": int(diag.ic_daily["model_id"].nunique()) if len(diag.ic_daily) else 0,
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
    )
