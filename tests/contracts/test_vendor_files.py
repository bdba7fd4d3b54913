"""End to end: simulated vendor files with planted faults, parsed by the ingest mapping,
caught by the contract rule that names the fault, at the rows the simulator reports."""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines.contracts import (
    Outcome,
    RowOrigin,
    ValidationContext,
    ValidationReport,
    validate_frame,
)
from pipelines.vendors.config import MarketConfig
from pipelines.vendors.faults import FaultPlan
from pipelines.vendors.simulator import VendorSimulator

pytestmark = pytest.mark.unit

parse = pytest.importorskip("pipelines.ingest.parse")
feed_spec = pytest.importorskip("pipelines.ingest.feed_spec")

MARKET = MarketConfig(
    seed=11, universe_size=200, start=dt.date(2023, 1, 3), end=dt.date(2023, 3, 31)
)
CLEAN, RENAME, RETYPE, DUPES, IMPOSSIBLE = (
    dt.date(2023, 3, 9),
    dt.date(2023, 3, 10),
    dt.date(2023, 3, 13),
    dt.date(2023, 3, 14),
    dt.date(2023, 3, 15),
)


@pytest.fixture(scope="module")
def sim() -> VendorSimulator:
    plan = FaultPlan.from_dict(
        {
            RENAME: [{"kind": "schema_rename", "column": "PX_LAST", "new_name": "PX_CLOSE"}],
            RETYPE: ["schema_retype"],
            DUPES: [{"duplicate_rows": {"rows": 4}}],
            IMPOSSIBLE: [{"impossible_values": {"rows": 3}}],
        }
    )
    return VendorSimulator(MARKET, faults=plan)


def check(sim: VendorSimulator, day: dt.date) -> ValidationReport:
    feed = feed_spec.load_feeds()["vendor_prices"]
    batch = parse.parse_file(feed, "prices.csv.gz", sim.day_files(day)["prices.csv.gz"])
    published = sim.publish_at(day)
    return validate_frame(
        "prices",
        batch.table,
        ValidationContext(
            feed=feed.name,
            logical_date=day,
            source_files=("prices.csv.gz",),
            expected_publish_time=published,
            known_at=published,
            row_origin=RowOrigin(file_column=parse.SOURCE_FILE, line_column=parse.SOURCE_LINE),
        ),
    )


def test_clean_vendor_day_passes(sim: VendorSimulator) -> None:
    report = check(sim, CLEAN)
    assert report.outcome is Outcome.PASSED, report.summary()


def test_vendor_schema_faults(sim: VendorSimulator) -> None:
    assert check(sim, RENAME).failure("schema.close.present") is not None
    retyped = check(sim, RETYPE).failure("schema.close.type")
    assert retyped is not None and retyped.sample[0].line == 2  # first data line


def test_vendor_row_faults_at_reported_rows(sim: VendorSimulator) -> None:
    (dupes,) = sim.fault_effects(DUPES)
    report = check(sim, DUPES)
    assert set(dupes.rows) <= set(report.failed_row_indices()), report.summary()
    (bad,) = sim.fault_effects(IMPOSSIBLE)
    report = check(sim, IMPOSSIBLE)
    neg_close, high_low, neg_volume = bad.rows
    assert report.failure("close_positive").sample[0].index == neg_close  # type: ignore[union-attr]
    assert report.failure("high_ge_low").sample[0].index == high_low  # type: ignore[union-attr]
    assert report.failure("volume_non_negative").sample[0].index == neg_volume  # type: ignore[union-attr]
    assert set(report.failed_row_indices()) == set(bad.rows)
