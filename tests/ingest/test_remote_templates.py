"""Remote folder and file names are templates over the session date (issue 13).

Any strftime works (``/outgoing/{date:%Y%m%d}``), in the folder and in the file name,
rendered by ONE function that the tasks, the backfill, the CLI and the DAG's sensors share.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from pipelines.ingest.feed_index import RemoteTemplateError, feed_index, render_remote
from pipelines.ingest.feed_spec import FeedConfigError, load_feed

pytestmark = pytest.mark.unit

DAY = dt.date(2024, 7, 5)

USER_FEED = """
name: acme_prices
table: prices
contract: prices
protocol: sftp
connection_id: sftp_acme
remote_dir: /outgoing/{date:%Y%m%d}
file: px_{date:%d%m%Y}.csv
manifest: manifest.json
corrections: px_fix_{previous:%Y%m%d}.csv
format: csv
compression: none
columns:
  security_id: FIGI
  valid_date: TRADE_DATE
  close: CLOSE
"""


def _write_feed(directory: Path, text: str = USER_FEED) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "acme_prices.yaml"
    path.write_text(text)
    return path


def test_render_remote_takes_any_strftime() -> None:
    assert render_remote("/outgoing/{date:%Y%m%d}", DAY) == "/outgoing/20240705"
    assert render_remote("/daily/{date:%Y-%m-%d}", DAY) == "/daily/2024-07-05"
    assert render_remote("/d/{date}", DAY) == "/d/2024-07-05"
    assert render_remote("{date:%Y}/{date:%m}/px_{date:%d%b}.csv", DAY) == "2024/07/px_05Jul.csv"
    assert render_remote("manifest.json", DAY) == "manifest.json"
    assert render_remote("fix_{previous:%Y%m%d}", DAY, field="previous") == "fix_20240705"
    with pytest.raises(RemoteTemplateError, match="session"):
        render_remote("/out/{session:%Y}", DAY)


def test_a_feed_file_may_carry_the_date(tmp_path: Path) -> None:
    feed = load_feed(_write_feed(tmp_path))
    assert feed.remote_folder(DAY) == "/outgoing/20240705"
    assert feed.file_name(DAY) == "px_05072024.csv"
    assert feed.remote_path(DAY) == "/outgoing/20240705/px_05072024.csv"
    assert feed.remote_path(DAY, "manifest.json") == "/outgoing/20240705/manifest.json"
    assert feed.correction_file(dt.date(2024, 7, 3)) == "px_fix_20240703.csv"


def test_a_bad_template_is_refused_when_the_feed_loads(tmp_path: Path) -> None:
    path = _write_feed(tmp_path, USER_FEED.replace("{date:%Y%m%d}", "{day:%Y%m%d}"))
    with pytest.raises(FeedConfigError, match="day"):
        load_feed(path)


def test_the_dag_sensor_polls_the_rendered_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The DAG's sensor for a user feed waits for /outgoing/YYYYMMDD/manifest.json."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.providers.sftp.sensors.sftp import SFTPSensor

    from pipelines.config import get_settings
    from pipelines.orchestration.airflow_env import DAGS_FOLDER

    _write_feed(tmp_path / "feeds")
    monkeypatch.setenv("ALPHAFACTORY_FEEDS_DIR", str(tmp_path / "feeds"))
    get_settings.cache_clear()
    try:
        entry = next(e for e in feed_index() if e.name == "acme_prices")
        assert entry.manifest_path(DAY) == "/outgoing/20240705/manifest.json"
        bag = DagBag(dag_folder=str(DAGS_FOLDER / "vendor_ingest.py"))
        assert not bag.import_errors, bag.import_errors
        sensor: Any = bag.dags["vendor_ingest"].get_task("wait_acme_prices")
    finally:
        get_settings.cache_clear()
    assert sensor.sftp_conn_id == "sftp_acme"

    polled: list[str] = []

    def poke(self: SFTPSensor, context: Any) -> bool:
        polled.append(self.path)
        return True

    monkeypatch.setattr(SFTPSensor, "poke", poke)
    sensor.session = DAY.isoformat()  # what Jinja renders from data_interval_end

    class _TI:  # the one thing a reschedule-mode sensor asks its task instance
        def get_first_reschedule_date(self, context: Any) -> None:
            return None

    sensor.execute({"ti": _TI()})
    assert polled == ["/outgoing/20240705/manifest.json"]
