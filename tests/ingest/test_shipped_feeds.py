"""A deployment on its own vendor declares only its feeds: ``ALPHAFACTORY_SHIPPED_FEEDS=false``
leaves out the simulator's feeds (and their ``sftp_vendor``/``http_vendor`` connections)
everywhere feeds are read — the validated specs and the DAG's light index alike."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.config import get_settings
from pipelines.ingest.feed_index import feed_index
from pipelines.ingest.feed_spec import load_feeds

pytestmark = pytest.mark.unit

USER_FEED = """
name: acme_prices
table: prices
contract: prices
protocol: sftp
connection_id: sftp_acme
remote_dir: /outgoing/{date:%Y%m%d}
file: EOD_{date:%Y%m%d}.csv
manifest: MANIFEST_{date:%Y%m%d}.json
compression: none
columns:
  security_id: FIGI
  valid_date: DATE
  close: CLOSE
"""


@pytest.fixture
def user_feeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    (tmp_path / "acme_prices.yaml").write_text(USER_FEED)
    monkeypatch.setenv("ALPHAFACTORY_FEEDS_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_shipped_feeds_are_declared_by_default(user_feeds: None) -> None:
    assert {"vendor_prices", "acme_prices"} <= set(load_feeds())
    assert {"vendor_prices", "acme_prices"} <= {e.name for e in feed_index()}


def test_only_the_users_feeds_without_the_shipped_ones(
    user_feeds: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALPHAFACTORY_SHIPPED_FEEDS", "false")
    get_settings.cache_clear()
    assert set(load_feeds()) == {"acme_prices"}
    assert [(e.name, e.connection_id) for e in feed_index()] == [("acme_prices", "sftp_acme")]
