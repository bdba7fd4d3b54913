"""Integration: ingestion through Airflow's SFTPHook and HttpHook against the running
simulator on loopback, with connections given the way the embedded Airflow gives them."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest

from pipelines.ingest.feed_spec import FeedSpec
from pipelines.ingest.flow import FeedNotPublished, ingest_rest_day, rest_window
from pipelines.ingest.gate import contract_gate
from pipelines.ingest.runtime import ingest_day
from pipelines.ingest.sources import HttpHookSource, SFTPHookSource
from pipelines.lake import Lake
from pipelines.testing.backdate import HISTORY
from pipelines.vendors.clock import FrozenClock
from pipelines.vendors.server import VendorEndpoints
from pipelines.vendors.simulator import VendorSimulator
from tests.ingest.conftest import (
    LATE_CLOCK,
    SEEDED_DAYS,
    SFTP_FEEDS,
    RunningVendor,
    export_connections,
)

pytestmark = pytest.mark.integration


def test_sftp_feeds_through_sftphook(live: RunningVendor, lake: Lake, sim: VendorSimulator) -> None:
    for day in SEEDED_DAYS[:1]:
        manifest = json.loads(sim.day_files(day)["manifest.json"])
        shas = {f["name"]: f["sha256"] for f in manifest["files"]}
        for feed in SFTP_FEEDS:
            (outcome,) = ingest_day(
                lake, day, feed, backdate=HISTORY
            )  # live sources: SFTPHook + HttpHook
            assert outcome.status == "loaded", outcome.message
            assert outcome.sha256 == shas[outcome.file_name]
        snap = lake.as_of("prices", known_at=sim.publish_at(day), valid_at=day)  # type: ignore[arg-type]
        assert snap.num_rows == len(sim.clean_prices(day))
    version = lake.status("prices").version
    for feed in SFTP_FEEDS:
        assert [o.status for o in ingest_day(lake, SEEDED_DAYS[0], feed, backdate=HISTORY)] == [
            "unchanged"
        ]
    assert lake.status("prices").version == version


def test_sftp_key_auth_and_unpublished_day(
    live: RunningVendor, lake: Lake, monkeypatch: pytest.MonkeyPatch, feeds: dict[str, FeedSpec]
) -> None:
    export_connections(monkeypatch, live.endpoints, key_auth=True)
    assert "password" not in json.loads(_conn("SFTP"))
    with SFTPHookSource().session() as session:
        assert "manifest.json" in (session.list_dir("/daily/2023-03-01") or [])
        assert session.list_dir("/daily/2023-03-01/prices.csv.gz") is None  # a file, not a day
    # Before the vendor's publish time the folder does not exist yet.
    live.clock.set(dt.datetime(2023, 3, 3, 12, tzinfo=dt.UTC))
    with pytest.raises(FeedNotPublished, match="vendor_prices: nothing published for 2023-03-03"):
        ingest_day(lake, dt.date(2023, 3, 3), "vendor_prices", backdate=HISTORY)


def _conn(kind: str) -> str:
    return os.environ[f"AIRFLOW_CONN_{kind}_VENDOR"]


def test_rest_through_httphook_retries_429_and_5xx(
    make_vendor: Callable[..., AbstractContextManager[VendorEndpoints]],
    monkeypatch: pytest.MonkeyPatch,
    lake: Lake,
    sim: VendorSimulator,
    feeds: dict[str, FeedSpec],
) -> None:
    # Two requests per second (a third meets a 429 with Retry-After) and ~20% of admitted
    # requests failing with 503 (deterministic: the 2nd and 4th).
    with make_vendor(rate_limit=2, error_rate=0.2, clock=FrozenClock(LATE_CLOCK)) as ep:
        export_connections(monkeypatch, ep)
        source = HttpHookSource(backoff=0.05)
        feed = feeds["vendor_fundamentals"].model_copy(update={"page_size": 300})
        day = SEEDED_DAYS[0]
        (outcome,) = ingest_rest_day(
            lake, feed, day, source, contract_gate, previous_session=None, backdate=HISTORY
        )
    assert outcome.status in ("loaded", "warned"), outcome.message
    assert source.retried.get(429, 0) >= 1, source.retried  # Retry-After honoured
    assert source.retried.get(503, 0) >= 1, source.retried
    _, until = rest_window(day, None)
    expected = sim.fundamentals(until_clock=until)
    assert outcome.rows == len(expected) == lake.status("fundamentals").rows
