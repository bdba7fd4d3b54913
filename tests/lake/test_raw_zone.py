"""The raw zone keeps vendor bytes immutably, addressed by checksum."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path

import pytest

from pipelines.lake import Lake, RawZoneError

pytestmark = pytest.mark.unit
DAY = dt.date(2024, 1, 2)


def test_landing_records_checksum_and_manifest(lake: Lake) -> None:
    rec = lake.land_raw("prices", DAY, "prices.csv.gz", b"v1 bytes")
    assert rec.landed and rec.file_version == 1
    assert rec.sha256 == hashlib.sha256(b"v1 bytes").hexdigest()
    assert rec.sha256 in rec.uri
    assert lake.read_raw(rec) == b"v1 bytes"
    manifest = lake.history("raw_manifest", {"feed": "prices"}).to_pylist()
    assert [(m["file_name"], m["sha256"], m["size_bytes"]) for m in manifest] == [
        ("prices.csv.gz", rec.sha256, 8)
    ]


def test_relanding_same_bytes_is_a_noop(lake: Lake) -> None:
    first = lake.land_raw("prices", DAY, "prices.csv.gz", b"same")
    again = lake.land_raw("prices", DAY, "prices.csv.gz", b"same")
    assert not again.landed
    assert again.file_version == first.file_version
    assert again.received_at == first.received_at
    assert lake.status("raw_manifest").rows == 1


def test_different_bytes_same_name_is_a_new_version_and_old_bytes_stay(lake: Lake) -> None:
    v1 = lake.land_raw("prices", DAY, "prices.csv.gz", b"original")
    v2 = lake.land_raw("prices", DAY, "prices.csv.gz", b"corrected")
    assert (v1.file_version, v2.file_version) == (1, 2)
    assert v1.uri != v2.uri
    assert lake.read_raw(v1) == b"original"
    assert lake.read_raw(v2) == b"corrected"
    # The manifest as known before the correction shows only the original.
    before = lake.as_of(
        "raw_manifest", known_at=v2.received_at - dt.timedelta(microseconds=1), valid_at=DAY
    )
    assert before.column("sha256").to_pylist() == [v1.sha256]
    latest = lake.as_of("raw_manifest", known_at=v2.received_at, valid_at=DAY)
    assert latest.column("sha256").to_pylist() == [v2.sha256]


def test_same_name_on_another_day_is_independent(lake: Lake) -> None:
    lake.land_raw("prices", DAY, "prices.csv.gz", b"a")
    other = lake.land_raw("prices", DAY + dt.timedelta(days=1), "prices.csv.gz", b"b")
    assert other.file_version == 1


def test_raw_objects_are_read_only_and_never_overwritten(lake: Lake) -> None:
    rec = lake.land_raw("prices", DAY, "prices.csv.gz", b"immutable")
    path = Path(rec.uri)
    assert not os.access(path, os.W_OK) or os.geteuid() == 0
    assert path.stat().st_mode & 0o222 == 0
    assert lake.raw_store.put_if_absent(rec.uri.split("/raw/", 1)[1], b"tampered") is False
    assert path.read_bytes() == b"immutable"


def test_tampered_object_fails_checksum(lake: Lake) -> None:
    rec = lake.land_raw("prices", DAY, "prices.csv.gz", b"good")
    path = Path(rec.uri)
    path.chmod(0o644)
    path.write_bytes(b"evil")
    with pytest.raises(RawZoneError, match="sha256"):
        lake.read_raw(rec)


@pytest.mark.parametrize("bad", ["", "a/b", ".."])
def test_bad_names_are_refused(lake: Lake, bad: str) -> None:
    with pytest.raises(RawZoneError):
        lake.land_raw("prices", DAY, bad, b"x")
