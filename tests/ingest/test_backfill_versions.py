"""A backfill validates per knowledge batch, never across versions (issue 14).

A vendor file is one knowledge batch: all its rows become known at one instant (the
manifest's publish time) and load as one silver batch. A day's prices and the correction
file that the next session's folder carries for it are two batches, so the key
``(security_id, valid_date)`` may appear once in each: two versions, the correction
winning in as-of reads from its knowledge time on. A REST session window is likewise one
batch, and an incremental REST backfill assigns each record to its own session's window.

Before the fix a chunk's key rule ran over all its files at once: both the original print
and its correction were quarantined, and an incremental REST backfill put the whole
history into its first day's batch (and quarantined it).
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc
import pytest

from pipelines.ingest.feed_spec import load_feeds
from pipelines.ingest.flow import FileOutcome, rest_window
from pipelines.ingest.quarantine import get_record
from pipelines.ingest.runtime import VendorSources, backfill, ingest_day
from pipelines.lake import Lake
from pipelines.testing.backdate import HISTORY
from pipelines.timeline import LATEST, trading_calendar
from pipelines.vendors.clock import FrozenClock
from pipelines.vendors.config import MarketConfig
from pipelines.vendors.faults import FaultPlan
from pipelines.vendors.inprocess import SimulatorFileSource, SimulatorRecordSource
from pipelines.vendors.simulator import VendorSimulator, correction_file_name
from tests.ingest.conftest import LATE_CLOCK, SFTP_FEEDS

pytestmark = pytest.mark.integration

MARKET = MarketConfig(seed=3, universe_size=24, start=dt.date(2023, 3, 1), end=dt.date(2023, 3, 31))
#: Two corrected sessions in a row: the 6th's folder holds its own prices and the 3rd's
#: correction, the 7th's folder the 6th's correction.
CORRECTED = (dt.date(2023, 3, 3), dt.date(2023, 3, 6))
DAYS = trading_calendar().sessions(dt.date(2023, 3, 1), dt.date(2023, 3, 7))
TABLES = ("security_master", "corporate_actions", "prices")


def _sim(faults: dict[str, list[object]]) -> VendorSimulator:
    return VendorSimulator(MARKET, faults=FaultPlan.from_dict(faults))


@pytest.fixture(scope="module")
def corrected() -> VendorSimulator:
    return _sim({d.isoformat(): [{"correction": {"rows": 2}}] for d in CORRECTED})


def _files(sim: VendorSimulator) -> SimulatorFileSource:
    return SimulatorFileSource(sim, FrozenClock(LATE_CLOCK))


def _backfill(lake: Lake, sim: VendorSimulator, days: list[dt.date]) -> list[FileOutcome]:
    results = backfill(
        lake,
        days,
        feed_names=list(SFTP_FEEDS),
        source_factory=lambda: _files(sim),
        workers=1,
        backdate=HISTORY,
    )
    return [o for outcomes in results.values() for o in outcomes]


def _quarantined(outcomes: list[FileOutcome]) -> list[str]:
    return [
        f"{o.logical_date}/{o.file_name}: {o.message}"
        for o in outcomes
        if o.status == "quarantined"
    ]


def _vendor_close(data: bytes, security_id: str) -> float:
    df = pd.read_csv(io.BytesIO(gzip.decompress(data)), dtype=str).set_index("SECID")
    return float(str(df.loc[security_id, "PX_LAST"]))


def _published(sim: VendorSimulator, day: dt.date) -> dt.datetime:
    at = sim.publish_at(day)
    assert at is not None
    return at


def test_a_chunk_with_corrections_loads_both_versions(
    tmp_path: Path, corrected: VendorSimulator
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    outcomes = _backfill(lake, corrected, DAYS)

    assert _quarantined(outcomes) == []
    assert lake.status("quarantine").rows in (0, None)
    loaded = {(o.logical_date, o.file_name) for o in outcomes if o.status == "loaded"}
    for day, folder in zip(CORRECTED, (dt.date(2023, 3, 6), dt.date(2023, 3, 7)), strict=True):
        assert (day, "prices.csv.gz") in loaded
        assert (folder, correction_file_name(day)) in loaded

    for day, folder in zip(CORRECTED, (dt.date(2023, 3, 6), dt.date(2023, 3, 7)), strict=True):
        (effect,) = [e for e in corrected.fault_effects(day) if e.kind == "correction"]
        sec = effect.security_ids[0]
        wrong = _vendor_close(corrected.day_files(day)["prices.csv.gz"], sec)
        right = _vendor_close(corrected.day_files(folder)[correction_file_name(day)], sec)
        assert wrong != right

        versions = lake.history("prices", {"security_id": sec, "valid_date": day}).to_pylist()
        assert [(v["known_at"], v["close"]) for v in versions] == [
            (_published(corrected, day), wrong),
            (_published(corrected, folder), right),
        ]

        def close_as_of(at: dt.datetime, sec: str = sec, day: dt.date = day) -> float:
            rows = lake.as_of(
                "prices", known_at=at, valid_at=day, filter=pc.field("security_id") == sec
            ).to_pylist()
            assert len(rows) == 1
            return float(rows[0]["close"])

        fixed_at = _published(corrected, folder)
        assert close_as_of(_published(corrected, day)) == wrong
        assert close_as_of(fixed_at - dt.timedelta(microseconds=1)) == wrong
        assert close_as_of(fixed_at) == right
        assert close_as_of(LATEST) == right


def _contents(lake: Lake, table: str) -> pd.DataFrame:
    """Every stored version, in a canonical order (write time left out)."""
    df = lake.dataset(table).to_table().to_pandas()
    df = df.drop(columns=[c for c in ("_ingested_at",) if c in df.columns])
    return df.sort_values(sorted(df.columns), ignore_index=True)


def _as_of(lake: Lake, table: str, at: dt.datetime) -> pd.DataFrame:
    df = lake.as_of(table, known_at=at, valid_at=(DAYS[0], DAYS[-1])).to_pandas()
    df = df.drop(columns=[c for c in ("_ingested_at",) if c in df.columns])
    return df.sort_values(sorted(df.columns), ignore_index=True)


def test_daily_and_backfill_give_the_same_lake(tmp_path: Path, corrected: VendorSimulator) -> None:
    daily = Lake(str(tmp_path / "daily"))
    sources = VendorSources(
        _files(corrected), SimulatorRecordSource(corrected, FrozenClock(LATE_CLOCK))
    )
    for day in DAYS:
        for name in SFTP_FEEDS:
            ingest_day(daily, day, name, sources=sources, backdate=HISTORY)
    filled = Lake(str(tmp_path / "backfill"))
    assert _quarantined(_backfill(filled, corrected, DAYS)) == []

    for table in TABLES:
        pd.testing.assert_frame_equal(_contents(filled, table), _contents(daily, table))
        for at in [LATEST, *(_published(corrected, d) for d in DAYS)]:
            pd.testing.assert_frame_equal(
                _as_of(filled, table, at), _as_of(daily, table, at), obj=f"{table} as of {at}"
            )
    # the corrections are in both, as second versions
    prices = _contents(daily, "prices")
    assert prices.duplicated(["security_id", "valid_date"]).sum() == 4


def test_a_duplicate_key_inside_one_file_is_still_quarantined(tmp_path: Path) -> None:
    dup_day = dt.date(2023, 3, 6)
    sim = _sim(
        {
            CORRECTED[0].isoformat(): [{"correction": {"rows": 2}}],
            dup_day.isoformat(): [{"duplicate_rows": {"rows": 3}}],
        }
    )
    lake = Lake(str(tmp_path / "lake"))
    outcomes = _backfill(lake, sim, DAYS)

    bad = [o for o in outcomes if o.status == "quarantined"]
    assert [(o.logical_date, o.file_name) for o in bad] == [(dup_day, "prices.csv.gz")]
    (o,) = bad
    assert "key.unique" in o.rules
    assert f"{dup_day}/prices.csv.gz" in o.message and "key.unique" in o.message
    assert o.quarantine_id is not None
    rec = get_record(lake, o.quarantine_id)
    assert rec["file_name"] == "prices.csv.gz" and "key.unique" in rec["rules"]
    # the appended copies and the rows they copy, named by file and line
    (effect,) = [e for e in sim.fault_effects(dup_day) if e.kind == "duplicate_rows"]
    assert rec["failed_rows"] == 2 * len(effect.security_ids)
    # the reason counts this file's rows as `quarantine list` does (issue 18), then the chunk's
    assert f"{rec['failed_rows']} of {rec['total_rows']} rows of this file fail" in rec["message"]
    sample = json.loads(rec["sample"])
    assert {s["file"] for s in sample} == {f"{dup_day}/prices.csv.gz"}
    assert {s["values"]["security_id"] for s in sample} == set(effect.security_ids)
    assert all(isinstance(s["line"], int) and s["line"] >= 2 for s in sample)
    # the correction of the 3rd, delivered in the same folder, is its own batch and loads
    loaded = {(x.logical_date, x.file_name) for x in outcomes if x.status == "loaded"}
    assert (dup_day, correction_file_name(CORRECTED[0])) in loaded
    assert (CORRECTED[0], "prices.csv.gz") in loaded


# --- REST -----------------------------------------------------------------------------


def _rest_backfill(lake: Lake, sim: VendorSimulator, days: list[dt.date]) -> list[FileOutcome]:
    records = SimulatorRecordSource(sim, FrozenClock(LATE_CLOCK))
    results = backfill(
        lake, days, feed_names=["vendor_sentiment"], records=records, backdate=HISTORY
    )
    return results["vendor_sentiment"]


def test_incremental_rest_backfill_assigns_records_to_their_own_sessions(tmp_path: Path) -> None:
    sim = VendorSimulator(MARKET)
    cal = trading_calendar()
    history = cal.sessions(dt.date(2023, 3, 1), dt.date(2023, 3, 14))
    later = cal.sessions(dt.date(2023, 3, 15), dt.date(2023, 3, 21))
    lake = Lake(str(tmp_path / "lake"))
    assert _quarantined(_rest_backfill(lake, sim, history)) == []

    outcomes = _rest_backfill(lake, sim, later)

    assert _quarantined(outcomes) == []
    assert lake.status("quarantine").rows in (0, None)
    stored = lake.dataset("sentiment").to_table().to_pandas()
    # no record twice: exactly the vendor's records up to the last window's close
    vendor = sim.sentiment(until_clock=rest_window(later[-1], None)[1])
    assert len(stored) == len(vendor)
    assert not stored.duplicated(["security_id", "valid_date", "known_at"]).any()
    # each record sits in the batch of the session whose window holds its publish time
    feed = load_feeds()["vendor_sentiment"]
    closes = pd.Series({d: rest_window(d, None)[1] for d in [*history, *later]})
    own = [closes.index[closes >= t].min() for t in stored["known_at"].dt.to_pydatetime()]
    batch_day = stored["_batch_id"].str.split(":").str[1]
    assert list(batch_day) == [d.isoformat() for d in own]
    assert (stored["valid_date"].astype(str) == batch_day).all()
    assert {o.logical_date for o in outcomes if o.rows} == set(later)
    assert all(o.file_name == f"{feed.name}.jsonl" for o in outcomes)

    # running it again, or over days already held, adds nothing
    again = _rest_backfill(lake, sim, [*history[-3:], *later])
    assert {o.status for o in again} == {"unchanged"}
    assert lake.dataset("sentiment").to_table().num_rows == len(stored)

    # the same sessions run day by day on the same history give the same lake
    daily = Lake(str(tmp_path / "daily"))
    _rest_backfill(daily, sim, history)
    records = SimulatorRecordSource(sim, FrozenClock(LATE_CLOCK))
    for day in later:
        ingest_day(
            daily, day, feed.name, sources=VendorSources(_files(sim), records), backdate=HISTORY
        )
    pd.testing.assert_frame_equal(_contents(daily, "sentiment"), _contents(lake, "sentiment"))
