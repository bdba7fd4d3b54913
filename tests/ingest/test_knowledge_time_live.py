"""``known_at: file_mtime`` over real SFTP: the file's modification time as Airflow's
``SFTPHook`` reads it from the simulator's server (the publish instant), not our receipt.

The in-process cases of every rule are in ``test_knowledge_time.py``; this one checks the
live session's ``mtime`` (``pipelines.ingest.sources``) against a loopback server.
"""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines.ingest.feed_spec import FeedSpec
from pipelines.ingest.flow import ingest_sftp_day
from pipelines.ingest.gate import pass_all
from pipelines.ingest.sources import SFTPHookSource
from pipelines.lake import Lake
from pipelines.testing.backdate import HISTORY
from pipelines.timeline import LATEST
from pipelines.vendors.simulator import VendorSimulator
from tests.ingest.conftest import SEEDED_DAYS, RunningVendor

pytestmark = pytest.mark.integration


def test_file_mtime_over_sftphook(
    live: RunningVendor, lake: Lake, sim: VendorSimulator, feeds: dict[str, FeedSpec]
) -> None:
    day = SEEDED_DAYS[0]
    feed = feeds["vendor_security_master"].model_copy(update={"known_at": "file_mtime"})
    (outcome,) = ingest_sftp_day(
        lake, feed, day, SFTPHookSource(feed.connection_id), pass_all, backdate=HISTORY
    )
    assert outcome.status == "loaded" and outcome.rows > 0
    rows = lake.as_of(
        "security_master", known_at=LATEST, valid_at=day, columns=["known_at", "valid_date"]
    ).to_pylist()
    published = sim.publish_at(day)
    assert published is not None and published < dt.datetime.now(dt.UTC)
    assert {r["known_at"] for r in rows if r["valid_date"] == day} == {published}
