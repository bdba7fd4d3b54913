"""A session whose prices file is quarantined: the daily loop and research name the
quarantine that holds it instead of ending in a traceback (issue 15)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from pipelines.daily import stages
from pipelines.daily.loop import run_day
from pipelines.ingest import quarantine
from pipelines.ingest.gate import file_failure
from pipelines.lake import Lake
from pipelines.testing.lakes import simulated_lake
from tests.daily.helpers import CONFIG, END, START

pytestmark = [pytest.mark.unit, pytest.mark.slow]

HELD = dt.date(2024, 5, 29)


def _drop(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    px = frames["prices"]
    frames["prices"] = px[px["valid_date"] != pd.Timestamp(HELD)].reset_index(drop=True)
    return frames


def test_the_skipped_session_names_its_quarantine(tmp_path: Path) -> None:
    lake: Lake = simulated_lake(
        tmp_path / "lake", universe=20, start=START, end=END, signal=0.3, seed=4, perturb=_drop
    )
    raw = lake.land_raw("vendor_prices", HELD, "prices.csv.gz", b"not what the manifest says")
    qid = quarantine.record(
        lake,
        feed="vendor_prices",
        target_table="prices",
        day=HELD,
        raw=raw,
        result=file_failure("prices.csv.gz", "file.checksum", "sha256 does not match"),
        total_rows=None,
    )
    broker = stages.paper_broker(lake, CONFIG)
    result = run_day(lake, HELD, CONFIG, broker)  # no traceback
    assert result.skipped is not None and qid in result.skipped, result.skipped
    assert f"alphafactory quarantine show {qid}" in result.skipped
