"""Tables fit a normal terminal (issue 18: ``lake tables`` and the quarantine list were cut
at 80 columns, ``securi…``); ``--json`` has every field for scripts."""

from __future__ import annotations

import datetime as dt
import io
import json

import numpy as np
import pytest
from rich.console import Console

from pipelines.cli import ingest as ingest_cli
from pipelines.cli import lake as lake_cli
from pipelines.cli.output import print_records
from pipelines.ingest import quarantine
from pipelines.ingest.gate import GateResult
from pipelines.lake import Lake
from pipelines.lake.store import RawFile

pytestmark = pytest.mark.unit
DAY = dt.date(2024, 7, 3)


def _console(width: int) -> Console:
    return Console(file=io.StringIO(), width=width)


def _out(console: Console) -> str:
    return console.file.getvalue()  # type: ignore[attr-defined]


def _fits(out: str, width: int) -> None:
    assert max(len(line) for line in out.splitlines()) <= width, out
    assert "…" not in out  # nothing cut off


def test_lake_tables_fit_80_columns_and_json_has_everything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    console = _console(80)
    monkeypatch.setattr(lake_cli, "console", console)
    lake_cli.tables()
    out = _out(console)
    _fits(out, 80)
    assert "risk_factor_covariance" in out  # the longest table name, whole
    assert "left out at this width" in out
    wide = _console(160)
    monkeypatch.setattr(lake_cli, "console", wide)
    lake_cli.tables()
    assert "security_id" in _out(wide) and "left out" not in _out(wide)
    plain = _console(80)
    monkeypatch.setattr(lake_cli, "console", plain)
    lake_cli.tables(as_json=True)
    rows = json.loads(_out(plain))
    assert {"table", "key", "valid time", "rows", "last commit"} <= set(rows[0])


def test_records_too_wide_for_a_table_print_one_block_each() -> None:
    console = _console(40)
    rows = [{f"column_{i}": f"value number {i}" for i in range(8)}]
    print_records(console, rows)
    out = _out(console)
    _fits(out, 40)
    assert "column_7  value number 7" in out


def test_quarantine_list_fits_and_counts_like_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    lake = Lake.from_settings()
    raw = RawFile(
        "vendor_prices", DAY, "prices.csv.gz", "cd" * 32, 10, "file:///raw/p", 1,
        dt.datetime(2024, 7, 3, 22, tzinfo=dt.UTC), True,
    )  # fmt: skip
    result = GateResult(
        "blocked",
        ["close_positive"],
        "2024-07-03/prices.csv.gz: 7000 of 9501 rows of this file fail; in the chunk: "
        "rule 'close_positive' failed on 7000 of 137265 rows",
        failed_rows=np.arange(7000),
    )
    (qid,) = quarantine.record_many(
        lake, [quarantine.QuarantineItem("vendor_prices", "prices", DAY, raw, result, 9501)]
    )
    console = _console(80)
    monkeypatch.setattr(ingest_cli, "console", console)
    ingest_cli.list_cmd(open_only=True, as_json=False)
    out = _out(console)
    _fits(out, 80)
    assert qid in out and "7000 of 9501" in out
