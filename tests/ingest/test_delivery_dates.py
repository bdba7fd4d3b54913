"""Rows the delivery cannot be about, and empty files inside a backfill chunk (issue 15):
a prices file whose rows are all dated the session before was accepted (the freshness rule
allows a week back, for corrections); an empty prices file inside a backfill chunk passed
the chunk-wide row count that its daily run fails."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json

import pandas as pd
import pytest

from pipelines.ingest.backfill import backfill_sftp
from pipelines.ingest.feed_spec import FeedSpec
from pipelines.ingest.flow import ingest_sftp_day
from pipelines.ingest.gate import contract_gate
from pipelines.lake import Lake
from pipelines.testing.vendor_folder import MemoryFolder
from pipelines.timeline import trading_calendar
from pipelines.vendors.simulator import VendorSimulator
from tests.ingest.conftest import CLEAN_DAY

pytestmark = pytest.mark.unit

CAL = trading_calendar()


def _folder(sim: VendorSimulator, feed: FeedSpec, day: dt.date, prices: bytes | None) -> dict:
    """The simulator's folder of ``day``, its prices file replaced by ``prices``."""
    files = dict(sim.day_files(day))
    manifest = json.loads(files.pop("manifest.json"))
    if prices is not None:
        files["prices.csv.gz"] = prices
        for entry in manifest["files"]:
            if entry["name"] == "prices.csv.gz":
                entry["sha256"] = hashlib.sha256(prices).hexdigest()
                frame = pd.read_csv(io.BytesIO(gzip.decompress(prices)))
                entry["rows"] = len(frame)
    files["manifest.json"] = json.dumps(manifest).encode()
    folder = feed.remote_folder(day)
    return {f"{folder}/{name}": data for name, data in files.items()}


def _rewrite(sim: VendorSimulator, day: dt.date, edit: object) -> bytes:
    frame = pd.read_csv(io.BytesIO(gzip.decompress(sim.day_files(day)["prices.csv.gz"])))
    frame = edit(frame)  # type: ignore[operator]
    return gzip.compress(frame.to_csv(index=False).encode())


def test_a_prices_file_dated_the_session_before_is_quarantined(
    seeded_lake: Lake, sim: VendorSimulator, feeds: dict[str, FeedSpec]
) -> None:
    feed = feeds["vendor_prices"]
    before = CAL.previous_session(CLEAN_DAY)
    stale = _rewrite(sim, CLEAN_DAY, lambda f: f.assign(TRADE_DATE=before.isoformat()))
    source = MemoryFolder(_folder(sim, feed, CLEAN_DAY, stale))
    (outcome,) = ingest_sftp_day(
        seeded_lake, feed, CLEAN_DAY, source, contract_gate, raise_on_quarantine=False
    )
    assert outcome.status == "quarantined"
    assert "trade_date_is_delivery" in outcome.rules, outcome.rules
    assert "prices.csv.gz line 2" in outcome.message


def test_an_empty_file_in_a_backfill_chunk_is_quarantined_alone(
    seeded_lake: Lake, sim: VendorSimulator, feeds: dict[str, FeedSpec]
) -> None:
    feed = feeds["vendor_prices"]
    days = [CLEAN_DAY, CAL.next_session(CLEAN_DAY)]
    empty = _rewrite(sim, days[0], lambda f: f.iloc[0:0])
    tree = {**_folder(sim, feed, days[0], empty), **_folder(sim, feed, days[1], None)}
    source = MemoryFolder(tree)
    out = backfill_sftp(seeded_lake, [feed], days, lambda _c: source, contract_gate, workers=1)
    by_day = {o.logical_date: o for o in out[feed.name] if o.file_name == "prices.csv.gz"}
    assert by_day[days[0]].status == "quarantined" and "not_empty" in by_day[days[0]].rules
    assert by_day[days[1]].status in ("loaded", "warned"), by_day[days[1]]
