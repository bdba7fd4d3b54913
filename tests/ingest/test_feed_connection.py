"""One feed = one connection (issue 13): a user feed naming its own Airflow connection is
fetched from THAT server — by a session's ingestion and by a backfill — never from the
default ``sftp_vendor``.

Two simulator instances run on loopback: the module's vendor behind ``sftp_vendor`` and a
second one, over a different market, behind the user's ``sftp_acme``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.config import get_settings
from pipelines.ingest.feed_spec import load_feeds
from pipelines.ingest.runtime import backfill, ingest_day, live_sources
from pipelines.lake import Lake
from pipelines.vendors.clock import FrozenClock
from pipelines.vendors.config import MarketConfig
from pipelines.vendors.server import VendorEndpoints, run_vendor
from pipelines.vendors.simulator import VendorSimulator
from tests.ingest.conftest import LATE_CLOCK, RunningVendor
from tests.vendors.conftest import vendor_config

pytestmark = pytest.mark.integration

#: The second vendor's market: other securities, so its files differ byte for byte.
ACME_MARKET = MarketConfig(
    seed=77, universe_size=30, start=dt.date(2023, 3, 1), end=dt.date(2023, 3, 31)
)
DAYS = [dt.date(2023, 3, 1), dt.date(2023, 3, 2)]


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VendorEndpoints]:
    sim = VendorSimulator(ACME_MARKET)
    cfg = vendor_config(
        tmp_path_factory.mktemp("acme-state"), FrozenClock(LATE_CLOCK), market=ACME_MARKET
    )
    with run_vendor(cfg, simulator=sim) as endpoints:
        yield endpoints


def _acme_feed(feeds_dir: Path) -> None:
    """The shipped security-master feed, declared by a user under their own connection."""
    shipped = (
        Path(__file__).resolve().parents[2] / "pipelines/ingest/feeds/vendor_security_master.yaml"
    ).read_text()
    text = shipped.replace("name: vendor_security_master", "name: acme_security_master")
    text = text.replace("connection_id: sftp_vendor", "connection_id: sftp_acme")
    (feeds_dir / "acme_security_master.yaml").write_text(text)


@pytest.fixture
def acme_feed(
    live: RunningVendor,
    acme: VendorEndpoints,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    feeds_dir = tmp_path / "feeds"
    feeds_dir.mkdir()
    _acme_feed(feeds_dir)
    monkeypatch.setenv("ALPHAFACTORY_FEEDS_DIR", str(feeds_dir))
    conn = {
        "conn_type": "sftp",
        "host": acme.host,
        "port": acme.sftp_port,
        "login": acme.username,
        "password": acme.password,
        "extra": {"look_for_keys": "false", "host_key": acme.host_public_key},
    }
    monkeypatch.setenv("AIRFLOW_CONN_SFTP_ACME", json.dumps(conn))
    get_settings.cache_clear()
    return "acme_security_master"


def _sha(ep_sim: VendorSimulator, day: dt.date) -> str:
    manifest = json.loads(ep_sim.day_files(day)["manifest.json"])
    return next(f["sha256"] for f in manifest["files"] if f["name"] == "security_master.csv.gz")


def _stored_ids(lake: Lake) -> set[str]:
    table = lake.history("security_master", {})
    return set(table.column("security_id").to_pylist())


def test_a_feed_is_fetched_through_its_own_connection(
    acme_feed: str, acme: VendorEndpoints, live: RunningVendor, lake: Lake
) -> None:
    feed = load_feeds()[acme_feed]
    assert feed.connection_id == "sftp_acme"
    theirs = _sha(acme.simulator, DAYS[0])
    ours = _sha(live.endpoints.simulator, DAYS[0])
    assert theirs != ours

    (outcome,) = ingest_day(lake, DAYS[0], acme_feed)
    assert outcome.status == "loaded", outcome.message
    assert outcome.sha256 == theirs
    acme_ids = set(acme.simulator.market.security_ids)
    assert _stored_ids(lake) <= acme_ids


def test_backfill_fetches_each_feed_through_its_own_connection(
    acme_feed: str, acme: VendorEndpoints, live: RunningVendor, lake: Lake
) -> None:
    results = backfill(lake, DAYS, feed_names=[acme_feed], workers=1)
    outcomes = results[acme_feed]
    assert [o.status for o in outcomes] == ["loaded", "loaded"], outcomes
    assert [o.sha256 for o in outcomes] == [_sha(acme.simulator, d) for d in DAYS]
    assert _stored_ids(lake) <= set(acme.simulator.market.security_ids)


def test_live_sources_of_a_feed_use_its_connection(acme_feed: str) -> None:
    """What ``quarantine release --refetch`` and ``ingest day`` read through."""
    from pipelines.ingest.sources import HttpHookSource, SFTPHookSource

    feeds = load_feeds()
    assert live_sources(feeds[acme_feed]).files == SFTPHookSource("sftp_acme")
    rest = feeds["vendor_fundamentals"].model_copy(update={"connection_id": "http_acme"})
    assert live_sources(rest).records == HttpHookSource("http_acme")
    assert live_sources(rest).files == SFTPHookSource("sftp_vendor")
