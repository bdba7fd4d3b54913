"""Ingestion flow on the in-process simulator: clean days land, re-runs add nothing."""

from __future__ import annotations

import datetime as dt
import json
import os

import pyarrow.compute as pc
import pytest

from pipelines.ingest.connections import ensure_vendor_connections
from pipelines.ingest.flow import rest_window
from pipelines.ingest.runtime import VendorSources, ingest_day
from pipelines.lake import Lake
from pipelines.testing.backdate import HISTORY
from pipelines.vendors.simulator import VendorSimulator
from tests.ingest.conftest import CLEAN_DAY, SEEDED_DAYS, SFTP_FEEDS

pytestmark = pytest.mark.unit

US = dt.timedelta(microseconds=1)


def _silver_state(lake: Lake) -> dict[str, tuple[int | None, int]]:
    out = {}
    for table in ("prices", "corporate_actions", "security_master", "raw_manifest", "quarantine"):
        status = lake.status(table)
        out[table] = (status.version, status.rows)
    return out


def test_clean_day_lands_raw_and_silver_known_at_publish_time(
    seeded_lake: Lake, sources: VendorSources, sim: VendorSimulator
) -> None:
    outcomes = [
        o
        for f in SFTP_FEEDS
        for o in ingest_day(seeded_lake, CLEAN_DAY, f, sources=sources, backdate=HISTORY)
    ]
    by_file = {o.file_name: o for o in outcomes}
    files = sim.day_files(CLEAN_DAY)
    manifest = json.loads(files["manifest.json"])
    clean = sim.clean_prices(CLEAN_DAY)
    assert by_file["prices.csv.gz"].status == "loaded"
    assert by_file["prices.csv.gz"].rows == len(clean)

    # Raw zone: the vendor's exact bytes, checksum as in the manifest.
    raw = seeded_lake.history(
        "raw_manifest", {"feed": "vendor_prices", "file_name": "prices.csv.gz"}
    )
    row = next(r for r in raw.to_pylist() if r["valid_date"] == CLEAN_DAY)
    expected_sha = next(f["sha256"] for f in manifest["files"] if f["name"] == "prices.csv.gz")
    assert row["sha256"] == expected_sha == by_file["prices.csv.gz"].sha256
    assert row["uri"].endswith(f"{expected_sha}/prices.csv.gz")
    with open(row["uri"].removeprefix("file://"), "rb") as fh:
        assert fh.read() == files["prices.csv.gz"]

    # Silver: known_at is the vendor's publish time; invisible one microsecond before.
    published = sim.publish_at(CLEAN_DAY)
    assert published is not None
    snap = seeded_lake.as_of("prices", known_at=published, valid_at=CLEAN_DAY)
    assert snap.num_rows == len(clean)
    assert set(snap.column("known_at").to_pylist()) == {published}
    closes = dict(zip(snap["security_id"].to_pylist(), snap["close"].to_pylist(), strict=True))
    assert closes == pytest.approx(dict(zip(clean["SECID"], clean["PX_LAST"], strict=True)))
    before = seeded_lake.as_of("prices", known_at=published - US, valid_at=CLEAN_DAY)
    assert before.num_rows == 0


def test_rerunning_a_day_adds_nothing(seeded_lake: Lake, sources: VendorSources) -> None:
    for feed in SFTP_FEEDS:
        ingest_day(seeded_lake, CLEAN_DAY, feed, sources=sources, backdate=HISTORY)
    state = _silver_state(seeded_lake)
    for day in (*SEEDED_DAYS, CLEAN_DAY):
        for feed in SFTP_FEEDS:
            outcomes = ingest_day(seeded_lake, day, feed, sources=sources, backdate=HISTORY)
            assert {o.status for o in outcomes} == {"unchanged"}, (day, feed, outcomes)
    assert _silver_state(seeded_lake) == state


def test_rest_since_cursor_is_incremental_and_idempotent(
    lake: Lake, sources: VendorSources, sim: VendorSimulator
) -> None:
    days = [sim.sessions[0], sim.sessions[1], sim.sessions[2]]
    for day in days:
        for feed in ("vendor_fundamentals", "vendor_sentiment"):
            (outcome,) = ingest_day(lake, day, feed, sources=sources, backdate=HISTORY)
            assert outcome.status in ("loaded", "warned"), outcome.message
    version = lake.status("fundamentals").version, lake.status("sentiment").version

    # The windows tile publication time: every record up to the last cutoff, once.
    _, until = rest_window(days[-1], days[-2])
    fund = sim.fundamentals(until_clock=until)
    stored = lake.dataset("fundamentals").to_table()
    assert stored.num_rows == len(fund)
    keys = {
        (r["security_id"], r["fiscal_period"], r["known_at"])
        for r in stored.select(["security_id", "fiscal_period", "known_at"]).to_pylist()
    }
    assert len(keys) == stored.num_rows  # no record twice
    # known_at is each record's own publication time: a restatement is a later version.
    restated = fund[fund["is_restatement"]].iloc[0]
    hist = lake.history("fundamentals", {"security_id": restated["security_id"]}).filter(
        pc.field("valid_date") == restated["fiscal_period_end"].date()
    )
    assert hist.num_rows >= 2
    assert sorted(hist["known_at"].to_pylist())[-1] == restated["published_at"].to_pydatetime()

    # Re-running any session fetches the same window and adds nothing.
    for day in reversed(days):
        for feed in ("vendor_fundamentals", "vendor_sentiment"):
            (outcome,) = ingest_day(lake, day, feed, sources=sources, backdate=HISTORY)
            # A window with records is recognised by its bytes; an empty one writes nothing.
            assert outcome.status == "unchanged" or outcome.rows == 0, (day, feed, outcome)
    assert (lake.status("fundamentals").version, lake.status("sentiment").version) == version


def test_embedded_default_connections_follow_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.config import get_settings

    for name in ("AIRFLOW_CONN_SFTP_VENDOR", "AIRFLOW_CONN_HTTP_VENDOR"):
        monkeypatch.setenv(name, "unset")  # recorded, so what ensure_* exports is undone
        monkeypatch.delenv(name)
    monkeypatch.setenv("ALPHAFACTORY_VENDOR_SFTP_PORT", "40222")
    monkeypatch.setenv("ALPHAFACTORY_VENDOR_HTTP_PORT", "40089")
    get_settings.cache_clear()
    ensure_vendor_connections()
    sftp, http = (json.loads(os.environ[f"AIRFLOW_CONN_{k}_VENDOR"]) for k in ("SFTP", "HTTP"))
    assert (sftp["host"], sftp["port"]) == ("127.0.0.1", 40222)
    assert (http["host"], http["port"]) == ("127.0.0.1", 40089)
    assert http["extra"]["Authorization"].startswith("Bearer ")
