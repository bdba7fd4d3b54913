"""Self-contained HTML building blocks: inline CSS, tables, matplotlib figures as PNG data URIs.

The page loads nothing from anywhere (no scripts, fonts or images by URL), so it can be
mailed, archived next to the day's records, and opened offline. Its one inline script makes
tables marked sortable sortable by a click on a header and filterable by a text box.
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
import numpy as np
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
table.sortable th{cursor:pointer}input.filter{margin:4px 0;font-size:12px;padding:2px 6px}
"""

#: Click a header of a ``sortable`` table to sort by it (again: reverse); type in the box
#: above it to keep the rows containing the text. Numbers sort as numbers.
SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function(t){
  var rows=function(){return Array.from(t.querySelectorAll('tr')).slice(1);};
  t.querySelectorAll('th').forEach(function(th,i){th.addEventListener('click',function(){
    var asc=th.dataset.dir!=='asc';th.dataset.dir=asc?'asc':'desc';
    var key=function(r){var v=r.children[i].dataset.v;var n=parseFloat(v);return isNaN(n)?v:n;};
    rows().sort(function(a,b){var x=key(a),y=key(b);return (x>y?1:x<y?-1:0)*(asc?1:-1);})
      .forEach(function(r){t.appendChild(r);});});});
  var box=t.previousElementSibling;
  if(box&&box.classList.contains('filter')){box.addEventListener('input',function(){
    var q=box.value.toLowerCase();rows().forEach(function(r){
      r.style.display=r.textContent.toLowerCase().indexOf(q)>=0?'':'none';});});}
});
"""


def esc(value: object) -> str:
    return html.escape(str(value))


def fmt(value: object, digits: int = 4) -> str:
    """Numbers rounded for reading (``digits`` significant ones, at least the integer part;
    0: to the integer); None/NaN as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if abs(value) >= 1000 or digits < 1:
            return f"{value:,.0f}"
        # Positional, never scientific: a PM reads 0.00006619, not 6.619e-05.
        return str(
            np.format_float_positional(
                value, precision=digits, unique=False, fractional=False, trim="-"
            )
        )
    return str(value)


def pct(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.{digits}f}%"


def table(
    frame: pd.DataFrame,
    *,
    max_rows: int = 40,
    left: Iterable[str] = (),
    sortable: bool = False,
) -> str:
    """An HTML table of ``frame`` (first ``max_rows`` rows); ``left`` columns left-aligned.
    ``sortable``: every row, sortable by a header click, with a filter box above it."""
    if frame.empty:
        return '<p class="note">(none)</p>'
    lefts = set(left)
    head = "".join(f'<th class="{"l" if c in lefts else ""}">{esc(c)}</th>' for c in frame.columns)
    rows = []
    shown = frame if sortable else frame.head(max_rows)
    for rec in shown.itertuples(index=False):
        cells = "".join(
            f'<td class="{"l" if c in lefts else ""}" data-v="{esc(v)}">{esc(fmt(v))}</td>'
            for c, v in zip(frame.columns, rec, strict=True)
        )
        rows.append(f"<tr>{cells}</tr>")
    if sortable:
        return (
            '<input class="filter" placeholder="filter rows…"/>'
            f'<table class="sortable"><tr>{head}</tr>{"".join(rows)}</table>'
            f'<p class="note">{len(frame)} rows; click a header to sort</p>'
        )
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
        f'<h1>{esc(title)}</h1><div class="sub">{esc(subtitle)}</div>{body}'
        f"<script>{SCRIPT}</script></body></html>"
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
