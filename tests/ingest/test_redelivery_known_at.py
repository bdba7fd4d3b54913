"""A re-delivery is known from when we received it (issue 14: knowledge time was what the
vendor claimed — a restatement with the same publish time tied with the first version and
hid it as of its time; one stamped earlier rewrote what the lake said we knew then)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pyarrow.compute as pc
import pytest

from pipelines.ingest.feed_spec import FeedSpec
from pipelines.ingest.flow import ingest_sftp_day
from pipelines.ingest.gate import pass_all
from pipelines.lake import Lake
from pipelines.testing.backdate import HISTORY
from pipelines.testing.vendor_folder import MemoryFolder

pytestmark = pytest.mark.unit

DAY = dt.date(2024, 3, 5)
PUBLISHED = dt.datetime(2024, 3, 5, 22, tzinfo=dt.UTC)
HEADER = b"ID,TICKER,DATE,O,H,L,C,V,CCY\n"


def _csv(close: float) -> bytes:
    return HEADER + f"A,AA,2024-03-05,10,20,9,{close},100,USD\n".encode()


def _delivery(data: bytes, published: dt.datetime) -> MemoryFolder:
    manifest = {
        "published_at": published.isoformat(),
        "files": [
            {
                "name": "px.csv",
                "sha256": hashlib.sha256(data).hexdigest(),
                "rows": data.count(b"\n") - 1,
            }
        ],
    }
    return MemoryFolder(
        {"/out/20240305/px.csv": data, "/out/20240305/manifest.json": json.dumps(manifest).encode()}
    )


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


def _close(lake: Lake, at: dt.datetime) -> float:
    rows = lake.as_of("prices", known_at=at, valid_at=DAY, filter=pc.field("security_id") == "A")
    return float(rows.column("close")[0].as_py())


@pytest.mark.parametrize(
    "claimed", [PUBLISHED, PUBLISHED - dt.timedelta(days=3)], ids=["same time", "backdated"]
)
def test_a_restatement_is_known_from_its_receipt(tmp_path: Path, claimed: dt.datetime) -> None:
    lake = Lake(str(tmp_path / "lake"))
    ingest_sftp_day(lake, FEED, DAY, _delivery(_csv(15.0), PUBLISHED), pass_all, backdate=HISTORY)
    before = dt.datetime.now(dt.UTC)
    ingest_sftp_day(
        lake, FEED, DAY, _delivery(_csv(16.0), claimed), pass_all, backdate=HISTORY
    )  # restated
    assert _close(lake, PUBLISHED) == 15.0  # what we knew at the first publish time
    assert _close(lake, before - dt.timedelta(seconds=1)) == 15.0  # …until the restatement
    assert _close(lake, dt.datetime.now(dt.UTC)) == 16.0


def test_a_row_the_restatement_drops_leaves_the_current_view(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    two = _csv(15.0) + b"B,BB,2024-03-05,10,20,9,12,100,USD\n"
    ingest_sftp_day(lake, FEED, DAY, _delivery(two, PUBLISHED), pass_all, backdate=HISTORY)
    ingest_sftp_day(
        lake, FEED, DAY, _delivery(_csv(15.5), PUBLISHED), pass_all, backdate=HISTORY
    )  # B dropped

    def ids(at: dt.datetime) -> list[str]:
        rows = lake.as_of("prices", known_at=at, valid_at=DAY)
        return sorted(rows.column("security_id").to_pylist())

    assert ids(PUBLISHED) == ["A", "B"]  # the past is kept
    assert ids(dt.datetime.now(dt.UTC)) == ["A"]
    again = ingest_sftp_day(
        lake, FEED, DAY, _delivery(_csv(15.5), PUBLISHED), pass_all, backdate=HISTORY
    )
    assert [o.status for o in again] == ["unchanged"] and ids(dt.datetime.now(dt.UTC)) == ["A"]
