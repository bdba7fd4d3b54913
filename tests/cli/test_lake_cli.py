"""``alphafactory lake …`` through typer's runner, against a real lake on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli.main import app
from pipelines.lake import Lake
from tests.lake.helpers import prices, ts

pytestmark = pytest.mark.unit
runner = CliRunner()


def _run(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def seeded(tmp_path: Path) -> Lake:
    lake = Lake.from_settings()
    lake.write("prices", prices(2, ["A", "B"], close=10.0), known_at=ts(2))
    lake.write("prices", prices(2, ["A"], close=12.0), known_at=ts(4))
    return lake


def test_tables_and_describe(seeded: Lake) -> None:
    out = _run("lake", "tables")
    assert "prices" in out and "security_master" in out
    out = _run("lake", "describe", "prices")
    assert "known_at" in out and "trade date" in out


def test_as_of_respects_knowledge_time_and_formats(seeded: Lake) -> None:
    early = json.loads(
        _run(
            "lake",
            "as-of",
            "prices",
            "--known-at",
            "2024-01-03T00:00:00+00:00",
            "--valid-at",
            "2024-01-02",
            "--format",
            "json",
        )
    )
    late = json.loads(
        _run(
            "lake",
            "as-of",
            "prices",
            "--known-at",
            "2024-01-05T00:00:00+00:00",
            "--valid-at",
            "2024-01-01..2024-01-03",
            "--where",
            "security_id = 'A'",
            "--format",
            "json",
        )
    )
    assert {r["security_id"]: r["close"] for r in early} == {"A": 10.0, "B": 10.0}
    assert [r["close"] for r in late] == [12.0]
    csv = _run(
        "lake",
        "as-of",
        "prices",
        "--known-at",
        "2024-01-05T00:00:00+00:00",
        "--valid-at",
        "2024-01-02",
        "--format",
        "csv",
    )
    assert csv.splitlines()[0].startswith('"security_id"')


def test_naive_known_at_is_a_usage_error(seeded: Lake) -> None:
    result = runner.invoke(
        app, ["lake", "as-of", "prices", "--known-at", "2024-01-05", "--valid-at", "2024-01-02"]
    )
    assert result.exit_code != 0
    assert "timezone" in result.output


def test_history_and_sql(seeded: Lake) -> None:
    out = json.loads(
        _run("lake", "history", "prices", "--key", "security_id=A", "--format", "json")
    )
    assert [r["close"] for r in out] == [10.0, 12.0]
    out = json.loads(
        _run(
            "lake",
            "sql",
            "SELECT security_id, count(*) AS n FROM prices GROUP BY 1 ORDER BY 1",
            "--format",
            "json",
        )
    )
    assert out == [{"security_id": "A", "n": 2}, {"security_id": "B", "n": 1}]
    bad = runner.invoke(app, ["lake", "sql", "SELECT * FROM nope"])
    assert bad.exit_code == 1 and "query failed" in bad.output


def test_load_is_idempotent_and_rejects_bad_files(tmp_path: Path) -> None:
    good = tmp_path / "p.csv"
    prices(3, ["A", "B"]).to_csv(good, index=False)
    past = ["--known-at", "2024-01-03T22:00:00+00:00", "--backdate", "--reason", "history"]
    out = _run("lake", "load", "prices", str(good), *past)
    assert "wrote 2 rows" in out
    out = _run("lake", "load", "prices", str(good), *past)
    assert "already loaded" in out
    bad = tmp_path / "bad.csv"
    prices(3, ["A", "B"]).assign(close=["1.0", "oops"]).to_csv(bad, index=False)
    result = runner.invoke(app, ["lake", "load", "prices", str(bad), *past])
    assert result.exit_code == 1
    assert "column 'close', row 1" in result.output
    assert Lake.from_settings().status("prices").rows == 2


def test_loading_into_the_past_needs_backdate_and_is_audited(tmp_path: Path) -> None:
    """Issue 14: ``lake load --known-at <past>`` rewrote what the lake says we knew then."""
    import datetime as dt

    import pyarrow.compute as pc

    from pipelines.config import get_settings
    from pipelines.timeline import ALL_DATES, LATEST

    good = tmp_path / "p.csv"
    prices(3, ["A", "B"]).to_csv(good, index=False)
    refused = runner.invoke(
        app, ["lake", "load", "prices", str(good), "--known-at", "2024-01-03T22:00:00+00:00"]
    )
    assert refused.exit_code == 2 and "--backdate --reason" in refused.output
    out = _run("lake", "load", "prices", str(good))  # known from now: the receipt time
    assert "wrote 2 rows" in out
    lake = Lake(get_settings().lake_root)
    known = lake.as_of("prices", known_at=LATEST, valid_at=ALL_DATES).column("known_at")
    assert pc.min(known).as_py() > dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    _run(
        "lake", "load", "prices", str(good), "--known-at", "2024-01-03T22:00:00+00:00",
        "--backdate", "--reason", "vendor history from the archive",
    )  # fmt: skip
    runs = lake.as_of("ingest_runs", known_at=LATEST, valid_at=ALL_DATES).to_pylist()
    (audit,) = [r for r in runs if r["status"] == "backdated"]
    assert "vendor history from the archive" in audit["message"] and audit["rows"] == 2


def test_maintain_and_init(seeded: Lake) -> None:
    out = _run("lake", "maintain", "--table", "prices")
    assert "prices: v" in out and "checkpointed" in out
    out = _run("lake", "init")
    assert "created" in out
