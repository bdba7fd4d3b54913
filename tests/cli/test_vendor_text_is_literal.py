"""Vendor text is printed literally (issue 15): ``[/bold]`` in a vendor's string crashed
the CLI (rich read it as a closing markup tag) after the quarantine was recorded, and
``quarantine show`` crashed on the same record."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pyarrow as pa
import pytest
from rich.console import Console

from pipelines.cli import ingest as ingest_cli
from pipelines.cli.output import OutputFormat, render

pytestmark = pytest.mark.unit

NASTY = "ACME [/bold] Holdings [red]x"


def _console() -> Console:
    return Console(file=io.StringIO(), width=200)


def test_a_table_of_vendor_strings_renders_them_literally() -> None:
    console = _console()
    render(pa.table({"name": [NASTY]}), OutputFormat.table, console)
    assert NASTY in console.file.getvalue()  # type: ignore[attr-defined]


def test_an_outcomes_table_with_markup_in_the_message() -> None:
    console = _console()
    row = ["vendor_prices", "2024-01-02", "p.csv", "quarantined", "1", "Q1", NASTY]
    console.print(ingest_cli._outcomes_table([row]))
    assert NASTY in console.file.getvalue()  # type: ignore[attr-defined]


def test_quarantine_show_prints_reasons_and_samples_literally(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record: dict[str, Any] = {
        "quarantine_id": "Q1",
        "status": "open",
        "feed": "vendor_master",
        "target_table": "security_master",
        "valid_date": dt.date(2024, 1, 2),
        "file_name": "master[/bold].csv",
        "sha256": None,
        "raw_uri": None,
        "rules": '["name_ok"]',
        "failed_rows": 1,
        "total_rows": 3,
        "actor": None,
        "message": f"row 2: name {NASTY}; another [/] reason",
        "sample": '[{"file": "master.csv", "line": 2, "values": {"name": "' + NASTY + '"}}]',
    }
    console = _console()
    monkeypatch.setattr(ingest_cli, "console", console)
    monkeypatch.setattr(ingest_cli, "_get", lambda qid, **_kw: record)
    ingest_cli.show_cmd("Q1")
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert NASTY in out and "master[/bold].csv" in out and "another [/] reason" in out
