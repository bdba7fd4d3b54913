"""One self-contained HTML research report (Jinja2; tables + matplotlib PNGs inlined as base64).

Every section it shows has content: a section without data is left out, except the live
IC, which says when the first score date matures. Charts keep their labels apart
(horizontal bars for named series, concise date axes, legends outside the plot), and
:func:`overlapping_labels` checks it.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: reports are written by workers without a display

import matplotlib.pyplot as plt
import pandas as pd
from jinja2 import Environment, select_autoescape
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

#: The promotion rule of :func:`pipelines.research.stages.retrain`, as the report states it.
PROMOTION_RULE = (
    "A challenger is promoted when its validation rank IC exceeds the champion's live rank "
    "IC (its validation rank IC until enough of its scores have matured) plus the margin; "
    "the decision takes effect from the next session."
)

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:0.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}
img{max-width:100%;border:1px solid #eee}
p.note{color:#444;max-width:60em}
</style></head><body>
<h1>{{ title }}</h1>
{% if meta %}<table class="meta">{% for k, v in meta.items() %}<tr><th>{{ k }}</th><td>{{ v }}</td></tr>{% endfor %}</table>{% endif %}
{% for section in sections %}
<section>
<h2>{{ section.title }}</h2>
{% if section.note %}<p class="note">{{ section.note }}</p>{% endif %}
{% if section.image %}<img alt="{{ section.title }}" src="data:image/png;base64,{{ section.image }}">{% endif %}
{% if section.table %}{{ section.table | safe }}{% endif %}
</section>
{% endfor %}
</body></html>
"""


@dataclass(frozen=True)
class SignalIC:
    """Point-in-time rank IC of each feature on its own and of each registered model.

    ``daily``: ``[date, model_id, horizon, ic, rank_ic, n]`` (``model_id`` is the feature
    or model name); ``features`` / ``models``: ``diagnostics.ic_summary`` per signal and
    horizon plus ``t_stat`` (mean rank IC over its overlap-corrected standard error).
    Built by :func:`pipelines.research.report_lake.signal_ic`.
    """

    daily: pd.DataFrame
    features: pd.DataFrame
    models: pd.DataFrame
    start: dt.date | None
    end: dt.date | None


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _table(frame: pd.DataFrame, max_rows: int = 60) -> str:
    return frame.head(max_rows).to_html(index=False, float_format=lambda v: f"{v:.4f}", border=0)


def overlapping_labels(fig: Figure) -> list[tuple[str, str]]:
    """Pairs of visible tick labels (same axis) whose drawn boxes intersect."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    clashes = []
    for ax in fig.axes:
        for labels in (ax.get_xticklabels(), ax.get_yticklabels()):
            shown = [t for t in labels if t.get_visible() and t.get_text()]
            boxes = [t.get_window_extent(renderer) for t in shown]
            for i in range(len(shown)):
                for j in range(i + 1, len(shown)):
                    if boxes[i].overlaps(boxes[j]):
                        clashes.append((shown[i].get_text(), shown[j].get_text()))
    return clashes


def _date_axis(ax: Any) -> None:
    locator = AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def cumulative_ic_figure(ic: pd.DataFrame, title: str = "Cumulative rank IC") -> Figure:
    """Cumulative rank IC per (series, horizon) over dates; legend beside the plot."""
    fig, ax = plt.subplots(figsize=(9, 3.5))
    for (model_id, horizon), g in ic.groupby(["model_id", "horizon"], sort=True):
        g = g.sort_values("date")
        ax.plot(g["date"], g["rank_ic"].fillna(0.0).cumsum(), label=f"{model_id} h={horizon}")
    ax.set_title(title)
    ax.axhline(0, color="k", lw=0.5)
    _date_axis(ax)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def hbar_figure(frame: pd.DataFrame, y: str, x: str, hue: str | None, title: str) -> Figure:
    """Horizontal bars of ``x`` per ``y`` (one bar group per ``hue``): one label per row,
    the figure as tall as the rows need, so names never overlap."""
    pivot = (
        frame.pivot_table(index=y, columns=hue, values=x, aggfunc="mean", sort=False)
        if hue
        else frame.set_index(y)[[x]]
    )
    series = max(pivot.shape[1], 1)
    height = max(2.5, 0.6 + len(pivot) * (0.18 + 0.07 * series))
    fig, ax = plt.subplots(figsize=(9, height))
    pivot.iloc[::-1].plot.barh(ax=ax, width=0.8)
    ax.set_title(title)
    ax.set_ylabel("")
    ax.axvline(0, color="k", lw=0.5)
    ax.tick_params(axis="y", labelsize=8)
    if hue:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        legend = ax.get_legend()
        if legend is not None:
            legend.remove()
    return fig


def bars_figure(frame: pd.DataFrame, x: str, y: str, hue: str, title: str) -> Figure:
    """Vertical bars of ``y`` per ``x`` (few categories: horizons, quantiles)."""
    pivot = frame.pivot_table(index=x, columns=hue, values=y, aggfunc="mean", sort=False)
    fig, ax = plt.subplots(figsize=(9, 3.5))
    pivot.plot.bar(ax=ax, rot=0)
    ax.set_title(title)
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def _section(
    title: str, image: Figure | None = None, table: pd.DataFrame | None = None, note: str = ""
) -> dict[str, str | None]:
    return {
        "title": title,
        "note": note or None,
        "image": _png(image) if image is not None else None,
        "table": _table(table, max_rows=500) if table is not None and len(table) else None,
    }


def _signal_sections(signals: SignalIC, horizon: int) -> list[dict[str, str | None]]:
    out = []
    window = f"{signals.start} .. {signals.end}"
    if len(signals.models):
        daily = signals.daily[
            signals.daily["model_id"].isin(signals.models["model_id"])
            & (signals.daily["horizon"] == horizon)
        ]
        out.append(
            _section(
                "Model rank IC (validation window and after)",
                cumulative_ic_figure(daily, f"Cumulative rank IC of the models, h={horizon}"),
                signals.models,
                note=f"Each registered model's scores from the session after its training "
                f"window to {signals.end}, against the {horizon}-session forward return as "
                "known once it matured. The validation window served early stopping.",
            )
        )
    if len(signals.features):
        main = signals.features[signals.features["horizon"] == horizon].sort_values(
            "mean_rank_ic", ascending=False
        )
        decay = signals.features.pivot_table(
            index="feature", columns="horizon", values="mean_rank_ic"
        )
        decay.columns = [f"rank IC h={h}" for h in decay.columns]
        table = main[["feature", "n_dates", "mean_ic", "mean_rank_ic", "rank_icir", "t_stat"]]
        table = table.merge(decay.reset_index(), on="feature")
        out.append(
            _section(
                "Feature rank IC (each feature on its own)",
                hbar_figure(main, "feature", "mean_rank_ic", None, f"Mean rank IC, h={horizon}"),
                table,
                note=f"Sessions {window}: each session's feature values as computed that "
                "session (point in time), against the forward return (the training label) "
                "as known once it matured. t_stat = mean rank IC / its standard error over "
                "non-overlapping periods; the h= columns are the IC decay.",
            )
        )
    return out


def write_research_report(
    path: str | Path,
    ic_daily: pd.DataFrame,
    ic_stats: pd.DataFrame,
    decay: pd.DataFrame,
    quantiles: pd.DataFrame,
    importance: pd.DataFrame,
    title: str = "Alpha Factory research report",
    meta: Mapping[str, object] | None = None,
    skipped: pd.DataFrame | None = None,
    signals: SignalIC | None = None,
    models: pd.DataFrame | None = None,
    first_score: dt.date | None = None,
    horizon: int = 5,
) -> Path:
    """Write the report and return its path.

    Inputs are the tidy outputs of :mod:`pipelines.research.diagnostics`:
    ``ic_daily`` (:func:`ic_by_date`), ``ic_stats`` (:func:`ic_summary`),
    ``decay`` (:func:`ic_decay`), ``quantiles`` (:func:`quantile_summary`) and
    ``importance`` (:func:`feature_importance`, possibly several models stacked;
    the plot averages per feature). ``skipped`` (:func:`skipped_summary`: feature, reason,
    first/last date, sessions) lists the features left out because their data is absent.
    ``models`` (:func:`pipelines.research.report_lake.model_table`) and ``signals``
    (:func:`pipelines.research.report_lake.signal_ic`) add the model comparison and the
    per-feature / per-model point-in-time IC; ``first_score`` dates the live IC note when
    no score has matured yet. Sections without data are left out.
    """
    sections: list[dict[str, str | None]] = []
    if models is not None and len(models):
        sections.append(
            _section("Models: champion and challengers", table=models, note=PROMOTION_RULE)
        )
    if signals is not None:
        sections += _signal_sections(signals, horizon)
    if len(ic_daily):
        sections.append(
            _section(
                "Live scores: cumulative rank IC",
                cumulative_ic_figure(ic_daily),
                ic_stats,
                note="The stored alpha scores against their matured forward returns.",
            )
        )
    else:
        when = ""
        if first_score is not None:
            from pipelines.timeline import trading_calendar

            matures = trading_calendar().offset(first_score, horizon)
            when = f" The first score date, {first_score}, matures at h={horizon} on {matures}."
        sections.append(
            _section(
                "Live scores: IC",
                note="No stored score has a matured forward return yet; the diagnostics "
                "stage adds one row per score date once it has." + when,
            )
        )
    if len(decay):
        sections.append(
            _section(
                "Live scores: IC decay",
                bars_figure(
                    decay, "horizon", "mean_rank_ic", "model_id", "Mean rank IC by horizon"
                ),
                decay,
            )
        )
    if len(quantiles):
        q = quantiles.assign(
            series=quantiles["model_id"] + " h=" + quantiles["horizon"].astype(str)
        )
        sections.append(
            _section(
                "Live scores: quantile returns",
                bars_figure(
                    q, "quantile", "mean_return", "series", "Mean forward return by score quantile"
                ),
                quantiles,
            )
        )
    if len(importance):
        agg = (
            importance.groupby("feature", as_index=False)[["gain_share", "mean_abs_contrib"]]
            .mean()
            .sort_values("gain_share", ascending=False)
        )
        long = agg.melt(id_vars="feature", var_name="measure", value_name="value")
        # put both measures on a comparable 0..1 scale for one chart
        long["value"] = long.groupby("measure")["value"].transform(lambda v: v / v.max())
        sections.append(
            _section(
                "Feature importance (gain share, mean |contribution|; scaled to max = 1)",
                hbar_figure(long, "feature", "value", "measure", "Feature importance"),
                agg,
            )
        )
    if skipped is not None and len(skipped):
        sections.append(
            _section(f"Skipped features ({skipped['feature'].nunique()})", table=skipped)
        )
    env = Environment(autoescape=select_autoescape(default=True))
    page = env.from_string(_TEMPLATE).render(
        title=title,
        meta=dict(meta or {}),
        sections=sections,
    )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
