"""One self-contained HTML research report (tables + matplotlib PNGs inlined as base64)."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: reports are written by workers without a display

import matplotlib.pyplot as plt
import pandas as pd
from jinja2 import Environment, select_autoescape
from matplotlib.figure import Figure

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:0.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}
img{max-width:100%;border:1px solid #eee}
</style></head><body>
<h1>{{ title }}</h1>
{% if meta %}<table>{% for k, v in meta.items() %}<tr><th>{{ k }}</th><td>{{ v }}</td></tr>{% endfor %}</table>{% endif %}
{% for section in sections %}
<h2>{{ section.title }}</h2>
{% if section.image %}<img alt="{{ section.title }}" src="data:image/png;base64,{{ section.image }}">{% endif %}
{% if section.table %}{{ section.table | safe }}{% endif %}
{% endfor %}
</body></html>
"""


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _table(frame: pd.DataFrame, max_rows: int = 60) -> str:
    return frame.head(max_rows).to_html(index=False, float_format=lambda v: f"{v:.4f}", border=0)


def _cumulative_ic(ic: pd.DataFrame) -> str:
    fig, ax = plt.subplots(figsize=(9, 3.5))
    for (model_id, horizon), g in ic.groupby(["model_id", "horizon"], sort=True):
        g = g.sort_values("date")
        ax.plot(g["date"], g["rank_ic"].fillna(0.0).cumsum(), label=f"{model_id} h={horizon}")
    ax.set_title("Cumulative rank IC")
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(fontsize=7)
    return _png(fig)


def _bars(frame: pd.DataFrame, x: str, y: str, hue: str, title: str) -> str:
    pivot = frame.pivot_table(index=x, columns=hue, values=y, aggfunc="mean", sort=False)
    fig, ax = plt.subplots(figsize=(9, 3.5))
    pivot.plot.bar(ax=ax, rot=0 if len(pivot) < 8 else 60)
    ax.set_title(title)
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(fontsize=7)
    return _png(fig)


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
) -> Path:
    """Write the report and return its path.

    Inputs are the tidy outputs of :mod:`pipelines.research.diagnostics`:
    ``ic_daily`` (:func:`ic_by_date`), ``ic_stats`` (:func:`ic_summary`),
    ``decay`` (:func:`ic_decay`), ``quantiles`` (:func:`quantile_summary`) and
    ``importance`` (:func:`feature_importance`, possibly several models stacked;
    the plot averages per feature). ``skipped`` (:func:`skipped_summary`: feature, reason,
    first/last date, sessions) lists the features left out because their data is absent;
    when given and not empty the report has a "Skipped features" section saying why.
    """
    sections: list[dict[str, str | None]] = []
    if len(ic_daily):
        sections.append(
            {"title": "Cumulative rank IC", "image": _cumulative_ic(ic_daily), "table": None}
        )
    sections.append({"title": "IC summary", "image": None, "table": _table(ic_stats)})
    if len(decay):
        sections.append(
            {
                "title": "IC decay",
                "image": _bars(
                    decay, "horizon", "mean_rank_ic", "model_id", "Mean rank IC by horizon"
                ),
                "table": _table(decay),
            }
        )
    if len(quantiles):
        q = quantiles.assign(
            series=quantiles["model_id"] + " h=" + quantiles["horizon"].astype(str)
        )
        sections.append(
            {
                "title": "Quantile returns",
                "image": _bars(
                    q, "quantile", "mean_return", "series", "Mean forward return by score quantile"
                ),
                "table": _table(quantiles),
            }
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
            {
                "title": "Feature importance (gain share, mean |contribution|; scaled to max = 1)",
                "image": _bars(long, "feature", "value", "measure", "Feature importance"),
                "table": _table(agg),
            }
        )
    if skipped is not None and len(skipped):
        sections.append(
            {
                "title": f"Skipped features ({skipped['feature'].nunique()})",
                "image": None,
                "table": _table(skipped, max_rows=500),
            }
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
