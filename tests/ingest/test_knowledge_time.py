"""A file-drop feed's knowledge time is what its YAML declares (``known_at``), never a guess.

Issue 13: "a vendor without published_at silently gets receipt time". The three rules
(``pipelines/vendors/FORMATS.md``, "Knowledge time") on the security-master feed of a small
in-process market, for the daily path (``ingest_sftp_day``, what ``vendor_ingest`` runs)
and the backfill path (``backfill_sftp``):

* ``manifest`` (default): the manifest's ``published_at``; a manifest without it is refused
  with one error naming the remote file, before anything is landed;
* ``receipt``: the moment the files were read (and said so once in the log);
* ``file_mtime``: the file's modification time on the vendor's server.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipelines.ingest.backfill import backfill_sftp
from pipelines.ingest.feed_spec import FeedConfigError, FeedSpec, load_feed, load_feeds
from pipelines.ingest.flow import ManifestError, ingest_sftp_day
from pipelines.ingest.gate import pass_all
from pipelines.ingest.sources import FileSession, FileSource
from pipelines.lake import Lake
from pipelines.testing.backdate import HISTORY
from pipelines.timeline import LATEST
from pipelines.vendors.clock import FrozenClock
from pipelines.vendors.config import MarketConfig
from pipelines.vendors.inprocess import SimulatorFileSource
from pipelines.vendors.simulator import VendorSimulator

pytestmark = pytest.mark.unit

MARKET = MarketConfig(seed=3, universe_size=8, start=dt.date(2023, 3, 1), end=dt.date(2023, 3, 8))
DAYS = (dt.date(2023, 3, 1), dt.date(2023, 3, 2))
NOW = dt.datetime(2023, 4, 1, 12, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def sim() -> VendorSimulator:
    return VendorSimulator(MARKET)


def _feed(known_at: str) -> FeedSpec:
    return load_feeds()["vendor_security_master"].model_copy(update={"known_at": known_at})


@dataclass
class _WithoutPublishTime:
    """A session whose manifests lack ``published_at`` (a vendor that writes none)."""

    inner: FileSession

    def list_dir(self, path: str) -> list[str] | None:
        return self.inner.list_dir(path)

    def read(self, path: str) -> bytes:
        data = self.inner.read(path)
        if path.endswith("manifest.json"):
            manifest = json.loads(data)
            del manifest["published_at"]
            return json.dumps(manifest).encode()
        return data

    def mtime(self, path: str) -> dt.datetime:
        return self.inner.mtime(path)


@dataclass
class _NoPublishTimeSource:
    inner: FileSource

    @contextmanager
    def session(self) -> Iterator[_WithoutPublishTime]:
        with self.inner.session() as s:
            yield _WithoutPublishTime(s)


def _source(sim: VendorSimulator, *, published_at: bool = True) -> FileSource:
    source = SimulatorFileSource(sim, FrozenClock(NOW))
    return source if published_at else _NoPublishTimeSource(source)


def _known_at(lake: Lake, day: dt.date) -> set[dt.datetime]:
    """Knowledge times of the master rows effective on ``day`` (an effective table's as-of
    also returns the earlier versions still in force)."""
    rows = lake.as_of(
        "security_master", known_at=LATEST, valid_at=day, columns=["known_at", "valid_date"]
    ).to_pylist()
    return {r["known_at"] for r in rows if r["valid_date"] == day}


def _published(lake: Lake, day: dt.date) -> set[dt.datetime]:
    """The knowledge time each ingest run recorded for ``day`` (also for a header-only
    file, which adds no silver row)."""
    runs = lake.as_of("ingest_runs", known_at=LATEST, valid_at=day, columns=["published_at"])
    return set(runs.column("published_at").to_pylist())


def test_manifest_publish_time_is_the_knowledge_time(lake: Lake, sim: VendorSimulator) -> None:
    (outcome,) = ingest_sftp_day(
        lake, _feed("manifest"), DAYS[0], _source(sim), pass_all, backdate=HISTORY
    )
    assert outcome.status == "loaded"
    assert _known_at(lake, DAYS[0]) == {sim.publish_at(DAYS[0])}


def test_manifest_without_published_at_is_refused_naming_the_file(
    lake: Lake, sim: VendorSimulator
) -> None:
    feed = _feed("manifest")
    with pytest.raises(ManifestError) as info:
        ingest_sftp_day(
            lake, feed, DAYS[0], _source(sim, published_at=False), pass_all, backdate=HISTORY
        )
    message = str(info.value)
    assert "\n" not in message
    assert "manifest /daily/2023-03-01/manifest.json has no published_at" in message
    assert "vendor_security_master" in message and "known_at: receipt" in message
    # Refused before landing: no raw bytes, no silver rows, no ingest run.
    assert lake.table("raw_manifest") is None and lake.table("security_master") is None


def test_backfill_refuses_a_manifest_without_published_at(lake: Lake, sim: VendorSimulator) -> None:
    source = _source(sim, published_at=False)
    with pytest.raises(ManifestError, match=r"/daily/2023-03-01/manifest.json has no published_at"):
        backfill_sftp(
            lake,
            [_feed("manifest")],
            list(DAYS),
            lambda _: source,
            pass_all,
            workers=1,
            backdate=HISTORY,
        )
    assert lake.table("security_master") is None


def test_receipt_time_when_the_feed_says_so_logged_once(
    lake: Lake, sim: VendorSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    feed = _feed("receipt").model_copy(update={"name": "receipt_master"})
    source = _source(sim, published_at=False)
    before = dt.datetime.now(dt.UTC)
    with caplog.at_level(logging.INFO, logger="pipelines.ingest.flow"):
        for day in DAYS:
            ingest_sftp_day(lake, feed, day, source, pass_all, backdate=HISTORY)
    after = dt.datetime.now(dt.UTC)
    for day in DAYS:
        (known,) = _published(lake, day)
        assert before <= known <= after
    assert _known_at(lake, DAYS[0]) == _published(lake, DAYS[0])
    said = [r for r in caplog.records if "known_at: receipt" in r.getMessage()]
    assert len(said) == 1 and "receipt_master" in said[0].getMessage()


def test_file_mtime_is_the_servers_modification_time(lake: Lake, sim: VendorSimulator) -> None:
    feed = _feed("file_mtime")
    ingest_sftp_day(
        lake, feed, DAYS[0], _source(sim, published_at=False), pass_all, backdate=HISTORY
    )
    # The simulator's files carry the publish instant as mtime (whole seconds).
    assert _known_at(lake, DAYS[0]) == {sim.publish_at(DAYS[0])}


def test_backfill_honours_receipt_and_file_mtime(lake: Lake, sim: VendorSimulator) -> None:
    source = _source(sim, published_at=False)
    before = dt.datetime.now(dt.UTC)
    backfill_sftp(
        lake, [_feed("receipt")], [DAYS[0]], lambda _: source, pass_all, workers=1, backdate=HISTORY
    )
    (received,) = _known_at(lake, DAYS[0])
    assert received >= before and _published(lake, DAYS[0]) == {received}
    backfill_sftp(
        lake,
        [_feed("file_mtime")],
        [DAYS[1]],
        lambda _: source,
        pass_all,
        workers=1,
        backdate=HISTORY,
    )
    assert _published(lake, DAYS[1]) == {sim.publish_at(DAYS[1])}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("known_at: published_at\n", "an sftp feed takes one of manifest, receipt, file_mtime"),
        ("known_at: manifest\n", "known_at: manifest needs a manifest file"),
    ],
)
def test_feed_file_declares_a_known_rule(tmp_path: Path, extra: str, message: str) -> None:
    path = tmp_path / "acme.yaml"
    path.write_text(
        "name: acme\ntable: prices\ncontract: prices\nprotocol: sftp\nconnection_id: sftp_acme\n"
        "remote_dir: /out/{date:%Y%m%d}\nfile: px.csv\n"
        "columns: {security_id: ID, valid_date: DATE, close: PX}\n" + extra
    )
    with pytest.raises(FeedConfigError, match=message) as info:
        load_feed(path)
    assert str(path) in str(info.value)
