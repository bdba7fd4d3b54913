"""Jinja2 rendering of the PM report: sections, tables, charts and the page.

A report is a list of :class:`Section` — a title, a template under ``templates/sections/``,
the template's context and a short glossary shown next to it. Adding a section is one
function returning a ``Section`` (and its template); the page template lays them out in
order. Numbers are formatted here, never in a template, so no template can print
``6.619e-05``. Charts are matplotlib figures embedded as PNG data URIs (the research report
does the same): the page loads nothing by URL and opens offline.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from matplotlib.figure import Figure

from pipelines.report import html as h

TEMPLATES = Path(__file__).with_name("templates")


@dataclass(frozen=True)
class Cell:
    """A table cell: the text shown and the value a sortable table sorts by."""

    text: str
    sort: str


@dataclass(frozen=True)
class Table:
    """A table ready for the ``table`` macro (every row of it is rendered)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    left: frozenset[str] = frozenset()
    sortable: bool = False
    hidden: int = 0  # rows left out (non-sortable tables show the first ``max_rows``)


@dataclass(frozen=True)
class Section:
    """One section of the report: ``template`` (a file under ``templates/sections/``)
    rendered with ``context``; ``glossary`` = (term, definition) pairs shown beside it."""

    title: str
    template: str
    context: Mapping[str, Any] = field(default_factory=dict)
    glossary: tuple[tuple[str, str], ...] = ()


def _cell(value: object, formatter: Any) -> Cell:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Cell("–", "")
    if isinstance(value, float | int) and not isinstance(value, bool):
        # Sort key positional too, so the page never carries a number in e-notation.
        return Cell(formatter(value), h.fmt(float(value), 12))
    return Cell(str(formatter(value)), str(value))


def table(
    frame: pd.DataFrame,
    *,
    left: Iterable[str] = (),
    sortable: bool = False,
    max_rows: int = 40,
    formats: Mapping[str, Any] | None = None,
) -> Table:
    """``frame`` as a :class:`Table`: every row when ``sortable``, else the first
    ``max_rows``; ``formats`` maps a column to a formatter (default :func:`html.fmt`)."""
    fmts = dict(formats or {})
    shown = frame if sortable else frame.head(max_rows)
    rows = tuple(
        tuple(_cell(v, fmts.get(str(c), h.fmt)) for c, v in zip(frame.columns, rec, strict=True))
        for rec in shown.itertuples(index=False)
    )
    return Table(
        columns=tuple(str(c) for c in frame.columns),
        rows=rows,
        left=frozenset(left),
        sortable=sortable,
        hidden=len(frame) - len(shown),
    )


def bps(value: float | None, digits: int = 1) -> str:
    """A fraction of NAV in basis points (``0.00006619`` → ``0.7 bp``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{1e4 * value:,.{digits}f} bp"


def pct(value: float | None, digits: int = 2) -> str:
    """A fraction of NAV in percent (``0.0123`` → ``1.23%``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:,.{digits}f}%"


def money(value: float | None) -> str:
    """A currency amount, whole units with thousands separators."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.0f}"


def chart(fig: Figure) -> str:
    """The figure as a PNG data URI (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@cache
def environment() -> Environment:
    """The templates' environment: autoescaped, undefined names are errors."""
    return Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_page(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The whole document (``templates/pm_report.html.j2``)."""
    return (
        environment()
        .get_template("pm_report.html.j2")
        .render(title=title, subtitle=subtitle, sections=sections)
    )
