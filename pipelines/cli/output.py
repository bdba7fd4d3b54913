"""Render Arrow tables for the terminal (rich), CSV or JSON."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def literal(value: object) -> str:
    """``value`` as text rich prints literally: vendor strings, file names and error
    messages may contain ``[...]`` that rich would read as markup (``[/bold]`` in a
    vendor's security name crashed the CLI)."""
    return escape("" if value is None else str(value))


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


#: A column narrower than this is not worth showing: past it, rows print as records.
MIN_COLUMN = 8
#: Values up to this long stay on one line (dates, counts); longer ones wrap at spaces.
SHORT_VALUE = 16
#: Single words (table names, ids) up to this long stay whole: breaking them misleads.
WORD_VALUE = 24


def _min_width(name: str, values: list[str]) -> int:
    """Narrowest a column may get: whole single words up to :data:`WORD_VALUE` (table
    names, ids: breaking them misleads), else :data:`MIN_COLUMN` (text wraps at spaces)."""
    natural = max([len(name), *(len(v) for v in values)])
    words = all(" " not in v for v in values)
    return natural if words and natural <= WORD_VALUE else min(natural, MIN_COLUMN)


def print_records(
    console: Console,
    rows: list[dict[str, Any]],
    title: str | None = None,
    *,
    optional: tuple[str, ...] = (),
    style: Callable[[dict[str, Any]], str | None] | None = None,
) -> None:
    """Print ``rows`` to fit ``console``'s width (issue 18: tables were cut at 80 columns).

    A table when its columns fit: single words stay whole, other text wraps (never an
    ellipsis). Too narrow for that, the ``optional`` columns are left out (in that order,
    saying so); still too narrow, one ``column: value`` block per row. Values print
    literally; ``--json`` of the command has everything.
    """
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    text = [{c: literal(r.get(c)) for c in cols} for r in rows]
    mins = {c: _min_width(c, [t[c] for t in text]) for c in cols}

    def fits(shown: list[str]) -> bool:
        return sum(mins[c] for c in shown) + 3 * len(shown) + 1 <= console.width

    shown = list(cols)
    hidden: list[str] = []
    for c in optional:
        if fits(shown) or c not in shown:
            continue
        shown.remove(c)
        hidden.append(c)
    if not fits(shown):
        if title:
            console.print(f"[bold]{title}[/bold]")
        pad = max(len(c) for c in cols) if cols else 0
        for i, t in enumerate(text):
            console.print(f"[dim]— {i + 1} —[/dim]")
            for c in cols:
                console.print(f"{c.ljust(pad)}  {t[c]}", overflow="fold")
        return
    table = Table(title=title, header_style="bold")
    for c in shown:
        natural = max([len(c), *(len(t[c]) for t in text)])
        table.add_column(c, overflow="fold", min_width=mins[c], no_wrap=mins[c] == natural)
    for r, t in zip(rows, text, strict=True):
        table.add_row(*(t[c] for c in shown), style=style(r) if style else None)
    console.print(table)
    if hidden:
        console.print(f"[dim]({', '.join(hidden)} left out at this width; --json has them)[/dim]")


def render(data: pa.Table, fmt: OutputFormat, console: Console, max_rows: int = 200) -> None:
    """Print ``data`` in ``fmt``; the terminal table (:func:`print_records`) is capped at
    ``max_rows`` rows."""
    if fmt is OutputFormat.csv:
        buf = io.BytesIO()
        pacsv.write_csv(data, buf)
        console.file.write(buf.getvalue().decode())
        return
    if fmt is OutputFormat.json:
        console.file.write(json.dumps(data.to_pylist(), default=str, indent=1) + "\n")
        return
    print_records(console, data.slice(0, max_rows).to_pylist())
    if data.num_rows > max_rows:
        console.print(f"[dim]… {data.num_rows - max_rows} more rows (use --format csv)[/dim]")
    console.print(f"[dim]{data.num_rows} rows[/dim]")
