"""Knowledge time is our receipt time; only an explicit, audited backdate loads into the past
(issue 14: "knowledge time is what the vendor claims" — a folder fetched days after its
publish time showed up in the lake as of that publish time, rewriting what we knew then).

The vendor's publish time is kept as its own column (``ingest_runs.published_at``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pyarrow.compute as pc
import pytest
from typer.testing import CliRunner

from pipelines.ingest.feed_spec import FeedSpec
from pipelines.ingest.flow import ingest_sftp_day, received_versions
from pipelines.ingest.gate import pass_all
from pipelines.ingest.knowledge import Backdate, rows_known_at
from pipelines.ingest.parse import map_columns
from pipelines.lake import Lake
from pipelines.testing.vendor_folder import MemoryFolder
from pipelines.timeline import LATEST

pytestmark = pytest.mark.unit

DAY = dt.date(2024, 3, 5)
PUBLISHED = dt.datetime(2024, 3, 5, 22, tzinfo=dt.UTC)
CSV = b"ID,TICKER,DATE,O,H,L,C,V,CCY\nA,AA,2024-03-05,10,20,9,15,100,USD\n"

FEED = FeedSpec(
    name="acme_prices",
    table="prices",
    contract="prices",
    protocol="sftp",
    connection_id="sftp_acme",
    remote_dir="/out/{date:%Y%m%d}",
    file="px.csv",
    manifest="manifest.json",
    compression="none",
    columns={
        "security_id": "ID", "ticker": "TICKER", "valid_date": "DATE", "open": "O",
        "high": "H", "low": "L", "close": "C", "volume": "V", "currency": "CCY",
    },
)  # fmt: skip


def _folder() -> MemoryFolder:
    manifest = {
        "published_at": PUBLISHED.isoformat(),
        "files": [{"name": "px.csv", "sha256": hashlib.sha256(CSV).hexdigest(), "rows": 1}],
    }
    return MemoryFolder(
        {"/out/20240305/px.csv": CSV, "/out/20240305/manifest.json": json.dumps(manifest).encode()}
    )


def _run(lake: Lake) -> dict[str, object]:
    (run,) = lake.as_of("ingest_runs", known_at=LATEST, valid_at=DAY).to_pylist()
    return run


def test_a_first_delivery_fetched_late_is_known_from_its_receipt(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    before = dt.datetime.now(dt.UTC)
    (outcome,) = ingest_sftp_day(lake, FEED, DAY, _folder(), pass_all)
    assert outcome.status == "loaded"
    # As of the vendor's publish time (and every time before we fetched) we knew nothing.
    assert (
        lake.as_of("prices", known_at=PUBLISHED + dt.timedelta(days=30), valid_at=DAY).num_rows == 0
    )
    (known,) = set(
        lake.as_of("prices", known_at=LATEST, valid_at=DAY).column("known_at").to_pylist()
    )
    assert known >= before
    run = _run(lake)
    assert run["published_at"] == PUBLISHED  # the vendor's claim, kept beside
    assert run["rows_known_at"] == known and run["backdate"] is None


def test_a_backdated_load_is_known_from_the_publish_time_and_audited(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    stamp = Backdate("initial history load", by="ops-anna")
    ingest_sftp_day(lake, FEED, DAY, _folder(), pass_all, backdate=stamp)
    rows = lake.as_of("prices", known_at=PUBLISHED, valid_at=DAY)
    assert rows.column("close").to_pylist() == [15.0]
    run = _run(lake)
    assert run["rows_known_at"] == PUBLISHED and run["published_at"] == PUBLISHED
    assert run["backdate"] == "backdated by ops-anna: initial history load"


def test_a_re_run_keeps_the_first_receipt(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    ingest_sftp_day(lake, FEED, DAY, _folder(), pass_all)
    first = _run(lake)["rows_known_at"]
    again = ingest_sftp_day(lake, FEED, DAY, _folder(), pass_all)
    assert [o.status for o in again] == ["unchanged"]
    assert lake.as_of("prices", known_at=LATEST, valid_at=DAY).num_rows == 1
    assert set(lake.dataset("prices").to_table().column("known_at").to_pylist()) == {first}


def test_a_backdate_needs_a_reason_and_never_goes_past_receipt() -> None:
    with pytest.raises(ValueError, match="needs a reason"):
        Backdate("  ")
    now = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    ahead = now + dt.timedelta(hours=1)  # a vendor clock ahead of ours
    assert rows_known_at(ahead, now, Backdate("history")) == now
    assert rows_known_at(PUBLISHED, now + dt.timedelta(days=400), None) > PUBLISHED


def test_rest_versions_received_together_keep_the_latest_unless_backdated() -> None:
    import pyarrow as pa

    from pipelines.ingest.feed_spec import load_feeds

    feed = load_feeds()["vendor_fundamentals"]
    t0 = dt.datetime(2024, 3, 5, 21, tzinfo=dt.UTC)
    record = {
        "security_id": "S1",
        "fiscal_period_end": "2023-12-31",
        "fiscal_year": 2023,
        "fiscal_quarter": 4,
        "revenue": 10.0,
        "net_income": 1.0,
        "book_equity": 5.0,
        "total_assets": 20.0,
        "operating_cash_flow": 2.0,
        "shares_outstanding": 100.0,
        "version": 1,
        "is_restatement": False,
        "currency": "USD",
        "published_at": t0.isoformat(),
    }
    restated = {
        **record,
        "net_income": 1.2,
        "version": 2,
        "is_restatement": True,
        "published_at": (t0 + dt.timedelta(hours=1)).isoformat(),
    }
    table = pa.Table.from_pylist([record, restated])
    batch = map_columns(feed, "f.jsonl", table)
    declared = pa.array([t0, t0 + dt.timedelta(hours=1)], pa.timestamp("us", tz="UTC"))
    received = t0 + dt.timedelta(days=2)
    kept, known = received_versions(feed, batch, declared, received, None)
    assert kept.table.num_rows == 1 and known.to_pylist() == [received]
    assert kept.table.column("net_income").to_pylist() == [1.2]  # the vendor's latest
    both, times = received_versions(feed, batch, declared, received, Backdate("history"))
    assert both.table.num_rows == 2 and times.to_pylist() == declared.to_pylist()


def test_cli_backdate_needs_a_reason_and_reason_needs_backdate() -> None:
    from pipelines.cli.main import app

    runner = CliRunner()
    out = runner.invoke(app, ["ingest", "day", "--date", "2024-03-05", "--backdate"])
    assert out.exit_code == 2 and "--reason" in out.output
    out = runner.invoke(
        app, ["ingest", "backfill", "--start", "2024-03-04", "--end", "2024-03-05", "--reason", "x"]
    )
    assert out.exit_code == 2 and "--backdate" in out.output


def test_a_history_record_is_filtered_by_the_vendor_column(tmp_path: Path) -> None:
    """The vendor's publish time of a run can be found for audit next to its knowledge time."""
    lake = Lake(str(tmp_path / "lake"))
    ingest_sftp_day(lake, FEED, DAY, _folder(), pass_all)
    runs = lake.as_of(
        "ingest_runs", known_at=LATEST, valid_at=DAY, filter=pc.field("published_at") == PUBLISHED
    )
    assert runs.num_rows == 1
