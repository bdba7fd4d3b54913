"""Feed file names stay inside the day folder (issue 15, "Fails closed").

A ``file``, ``manifest`` or ``corrections`` template that renders to a path (``../x``, an
absolute path, ``a/b``) used to be joined to the day folder and read outside it on the
server; the feed is now refused when it loads, in one line naming the feed file and field.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pipelines.cli.main import error_line
from pipelines.ingest.feed_spec import FeedConfigError, load_feed

pytestmark = pytest.mark.unit

FEED = """
name: acme_prices
table: prices
contract: prices
protocol: sftp
connection_id: sftp_acme
remote_dir: /outgoing/{date:%Y%m%d}
file: px_{date:%Y%m%d}.csv.gz
manifest: manifest.json
corrections: px_fix_{previous:%Y%m%d}.csv.gz
columns:
  security_id: FIGI
  valid_date: TRADE_DATE
  close: CLOSE
"""


def _feed(tmp_path: Path, field: str, value: str) -> Path:
    lines = [line for line in FEED.splitlines() if not line.startswith(f"{field}:")]
    path = tmp_path / "acme_prices.yaml"
    path.write_text("\n".join([*lines, f"{field}: {value!r}"]) + "\n")
    return path


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("file", "../x.csv.gz"),
        ("file", "/etc/passwd"),
        ("file", "a/b.csv.gz"),
        ("file", "px_{date:%m/%d}.csv.gz"),
        ("file", ".."),
        ("file", "..\\x.csv.gz"),
        ("manifest", "../manifest.json"),
        ("corrections", "../fix_{previous:%Y%m%d}.csv.gz"),
    ],
)
def test_a_name_outside_the_day_folder_is_refused_at_load(
    tmp_path: Path, field: str, value: str
) -> None:
    path = _feed(tmp_path, field, value)
    with pytest.raises(FeedConfigError) as caught:
        load_feed(path)
    line = error_line(caught.value)
    assert "\n" not in line
    assert str(path) in line and f"{field}: " in line and "inside the day folder" in line


def test_plain_names_and_dated_folders_still_load(tmp_path: Path) -> None:
    feed = load_feed(_feed(tmp_path, "file", "px..{date:%Y%m%d}.csv.gz"))
    assert feed.file_name(dt.date(2024, 7, 5)) == "px..20240705.csv.gz"
