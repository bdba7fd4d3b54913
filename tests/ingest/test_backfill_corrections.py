"""The backfill fetches a feed's correction file by the name the daily path renders
(``corrections: {previous:<strftime>}…``), whatever the template looks like (issue 13)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from pipelines.ingest.backfill import _fetch_day
from pipelines.ingest.feed_spec import FeedSpec
from pipelines.testing.vendor_folder import MemoryFolder

pytestmark = pytest.mark.unit

DAY, PREVIOUS = dt.date(2024, 7, 8), dt.date(2024, 7, 5)  # a Monday and the Friday before


def _feed(corrections: str) -> FeedSpec:
    return FeedSpec(
        name="acme_prices",
        table="prices",
        contract="prices",
        protocol="sftp",
        connection_id="sftp_acme",
        remote_dir="/outgoing/{date:%Y%m%d}",
        file="EOD_{date:%Y%m%d}.csv",
        manifest="MANIFEST_{date:%Y%m%d}.json",
        corrections=corrections,
        compression="none",
        columns={"security_id": "FIGI", "valid_date": "DATE", "close": "CLOSE"},
    )


@pytest.mark.parametrize(
    ("template", "correction"),
    [
        ("{previous:%Y%m%d}_EOD_fix.csv", "20240705_EOD_fix.csv"),  # starts with the date
        ("EOD_{previous:%Y%m%d}.fix", "EOD_20240705.fix"),  # shares the main file's prefix
    ],
)
def test_the_previous_sessions_correction_and_nothing_else(template: str, correction: str) -> None:
    folder = "/outgoing/20240708"
    tree = MemoryFolder(
        {
            f"{folder}/EOD_20240708.csv": b"main",
            f"{folder}/{correction}": b"fix",
            f"{folder}/EOD_20240703.fix": b"an older session's fix",
            f"{folder}/SECMASTER_20240708.csv": b"another feed",
            f"{folder}/MANIFEST_20240708.json": json.dumps(
                {"published_at": "2024-07-08T22:00:00+00:00", "files": []}
            ).encode(),
        }
    )
    (fetched,) = _fetch_day(tree, [_feed(template)], DAY).values()
    assert [(f.name, f.data) for f in fetched] == [
        ("EOD_20240708.csv", b"main"),
        (correction, b"fix"),
    ]
