"""The security master keeps the vendor's delisting reason (issue 14: ingest dropped it)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pipelines.ingest.runtime import ingest_day
from pipelines.lake import Lake
from pipelines.timeline import LATEST
from pipelines.vendors.config import MarketConfig
from pipelines.vendors.simulator import VendorSimulator
from tests.ingest.conftest import inprocess

pytestmark = pytest.mark.integration

#: Seed 8: S000033 is acquired, its delisting effective on 2024-05-10.
MARKET = MarketConfig(seed=8, universe_size=40, start=dt.date(2024, 1, 2), end=dt.date(2024, 6, 28))
DAY = dt.date(2024, 5, 10)


def test_ingested_security_master_keeps_the_delisting_reason(tmp_path: Path) -> None:
    sim = VendorSimulator(MARKET)
    lake = Lake(str(tmp_path / "lake"))
    [outcome] = ingest_day(
        lake,
        DAY,
        "vendor_security_master",
        sources=inprocess(sim, dt.datetime(2024, 7, 1, tzinfo=dt.UTC)),
    )
    assert outcome.status == "loaded", outcome
    master = lake.as_of("security_master", known_at=LATEST, valid_at=DAY).to_pandas()
    row = master[master["security_id"] == "S000033"].iloc[0]
    assert not row["listed"]
    assert row["delist_date"] == DAY
    assert row["delist_reason"] == "ACQUIRED"
