"""Render Arrow tables for the terminal (rich), CSV or JSON."""

from __future__ import annotations

import io
import json
from enum import StrEnum

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


def render(data: pa.Table, fmt: OutputFormat, console: Console, max_rows: int = 200) -> None:
    """Print ``data`` in ``fmt``; the terminal table is capped at ``max_rows`` rows."""
    if fmt is OutputFormat.csv:
        buf = io.BytesIO()
        pacsv.write_csv(data, buf)
        console.file.write(buf.getvalue().decode())
        return
    if fmt is OutputFormat.json:
        console.file.write(json.dumps(data.to_pylist(), default=str, indent=1) + "\n")
        return
    table = Table(show_lines=False, header_style="bold")
    for name in data.column_names:
        table.add_column(name, overflow="fold")
    for row in data.slice(0, max_rows).to_pylist():
        table.add_row(*(literal(v) for v in row.values()))
    console.print(table)
    if data.num_rows > max_rows:
        console.print(f"[dim]… {data.num_rows - max_rows} more rows (use --format csv)[/dim]")
    console.print(f"[dim]{data.num_rows} rows[/dim]")
