"""Self-contained HTML building blocks: inline CSS, tables, matplotlib figures as PNG data URIs.

The page loads nothing from anywhere (no scripts, fonts or images by URL), so it can be
mailed, archived next to the day's records, and opened offline.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#1d2330;
background:#fbfbfd}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;border-bottom:2px solid #2f5b9a;
padding-bottom:3px;margin-top:28px}
.sub{color:#5b6475;margin-bottom:14px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:10px 0}
.card{background:#fff;border:1px solid #d9dde6;border-radius:6px;padding:8px 12px;min-width:120px}
.card .v{font-size:18px;font-weight:600}.card .k{font-size:11px;color:#5b6475;text-transform:uppercase}
table{border-collapse:collapse;font-size:12px;background:#fff;margin:6px 0}
th,td{border:1px solid #d9dde6;padding:3px 7px;text-align:right}
th{background:#eef1f7}td.l,th.l{text-align:left}
.ok{color:#1a7f37;font-weight:600}.warn{color:#b26b00;font-weight:600}.bad{color:#c62828;font-weight:600}
.grid{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
img{max-width:100%;border:1px solid #e3e6ee;background:#fff}
.note{font-size:12px;color:#5b6475}
"""


def esc(value: object) -> str:
    return html.escape(str(value))


def fmt(value: object, digits: int = 4) -> str:
    """Numbers rounded for reading; None/NaN as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    return str(value)


def pct(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.{digits}f}%"


def table(frame: pd.DataFrame, *, max_rows: int = 40, left: Iterable[str] = ()) -> str:
    """An HTML table of ``frame`` (first ``max_rows`` rows); ``left`` columns left-aligned."""
    if frame.empty:
        return '<p class="note">(none)</p>'
    lefts = set(left)
    head = "".join(f'<th class="{"l" if c in lefts else ""}">{esc(c)}</th>' for c in frame.columns)
    rows = []
    for rec in frame.head(max_rows).itertuples(index=False):
        cells = "".join(
            f'<td class="{"l" if c in lefts else ""}">{esc(fmt(v))}</td>'
            for c, v in zip(frame.columns, rec, strict=True)
        )
        rows.append(f"<tr>{cells}</tr>")
    more = (
        f'<p class="note">… {len(frame) - max_rows} more rows</p>' if len(frame) > max_rows else ""
    )
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>{more}"


def cards(items: Sequence[tuple[str, str]], classes: dict[str, str] | None = None) -> str:
    cls = classes or {}
    body = "".join(
        f'<div class="card"><div class="k">{esc(k)}</div>'
        f'<div class="v {cls.get(k, "")}">{esc(v)}</div></div>'
        for k, v in items
    )
    return f'<div class="cards">{body}</div>'


def figure(width: float = 6.4, height: float = 3.2) -> tuple[Figure, Any]:
    fig, ax = plt.subplots(figsize=(width, height), dpi=90)
    return fig, ax


def png(fig: Figure) -> str:
    """``<img>`` with the figure as an embedded PNG (the figure is closed)."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="chart" src="data:image/png;base64,{data}"/>'


def page(title: str, subtitle: str, sections: Sequence[tuple[str, str]]) -> str:
    """The whole document: title, subtitle and (heading, html) sections."""
    body = "".join(f"<h2>{esc(h)}</h2>{content}" for h, content in sections)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"/>'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f'<h1>{esc(title)}</h1><div class="sub">{esc(subtitle)}</div>{body}</body></html>'
    )


def write_document(uri: str, text: str, storage_options: dict[str, str] | None = None) -> str:
    """Write ``text`` (UTF-8) to a local path (atomically) or an ``s3://`` URI; return ``uri``."""
    if uri.startswith("s3://"):
        from pipelines.lake.files import filesystem_for

        fs, path = filesystem_for(uri, storage_options)
        with fs.open_output_stream(path) as stream:
            stream.write(text.encode("utf-8"))
        return uri
    target = Path(uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    return uri
