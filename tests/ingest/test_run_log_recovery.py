"""A run killed between the data commit and the run-log write (issue 15: the re-run then
recorded every such day as "unchanged, 0 rows", a false record). The re-run now recovers
what happened from the lake: the file was loaded, with the rows its silver batch holds."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest

import pipelines.ingest.backfill as backfill_mod
import pipelines.ingest.flow as flow
from pipelines.ingest.feed_spec import FeedSpec
from pipelines.ingest.gate import pass_all
from pipelines.lake import Lake
from pipelines.testing.vendor_folder import MemoryFolder
from pipelines.timeline import LATEST

pytestmark = pytest.mark.unit

DAY = dt.date(2024, 3, 5)
CSV = (
    b"ID,TICKER,DATE,O,H,L,C,V,CCY\n"
    b"A,AA,2024-03-05,10,11,9,10.5,100,USD\n"
    b"B,BB,2024-03-05,20,21,19,20.5,200,USD\n"
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
        "security_id": "ID",
        "ticker": "TICKER",
        "valid_date": "DATE",
        "open": "O",
        "high": "H",
        "low": "L",
        "close": "C",
        "volume": "V",
        "currency": "CCY",
    },
)
SOURCE = MemoryFolder(
    {
        "/out/20240305/px.csv": CSV,
        "/out/20240305/manifest.json": json.dumps(
            {
                "published_at": "2024-03-05T22:00:00+00:00",
                "files": [{"name": "px.csv", "sha256": hashlib.sha256(CSV).hexdigest()}],
            }
        ).encode(),
    }
)


class Killed(Exception):
    """The process died here (SIGKILL between two commits)."""


def _runs(lake: Lake) -> list[dict[str, Any]]:
    return lake.as_of(
        "ingest_runs", known_at=LATEST, valid_at=DAY, filter=pc.field("feed") == FEED.name
    ).to_pylist()


def _crash_on_run_log(*_a: object, **_k: object) -> None:
    raise Killed


@pytest.mark.parametrize("path", ["daily", "backfill"])
def test_a_rerun_after_a_crash_records_the_load(
    path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = Lake(str(tmp_path / "lake"))

    def run() -> list[flow.FileOutcome]:
        if path == "daily":
            return flow.ingest_sftp_day(lake, FEED, DAY, SOURCE, pass_all)
        out = backfill_mod.backfill_sftp(
            lake, [FEED], [DAY], lambda _c: SOURCE, pass_all, workers=1
        )
        return out[FEED.name]

    with monkeypatch.context() as m:
        m.setattr(flow, "record_runs", _crash_on_run_log)
        m.setattr(backfill_mod, "record_runs", _crash_on_run_log)
        with pytest.raises(Killed):
            run()
    assert lake.as_of("prices", known_at=LATEST, valid_at=DAY).num_rows == 2  # data committed
    assert _runs(lake) == []  # …the run log not
    (outcome,) = run()
    assert (outcome.status, outcome.rows) == ("loaded", 2), outcome
    assert "recovered" in outcome.message
    assert [(r["status"], r["rows"]) for r in _runs(lake)] == [("loaded", 2)]
    (again,) = run()  # a third run: truly unchanged now
    assert (again.status, again.rows) == ("unchanged", 0)
