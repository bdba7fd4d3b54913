"""The same lake code path on S3, against moto's S3-compatible server over HTTP on loopback."""

from __future__ import annotations

import datetime as dt

import boto3
import pytest

from pipelines.config import Settings
from pipelines.lake import Lake
from pipelines.lake.maintenance import maintain_table
from tests.lake.helpers import prices, ts

pytestmark = pytest.mark.integration


@pytest.fixture
def s3_lake(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Lake:
    # Test-only credentials for the local fake; real ones come from the environment.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    bucket = "lake-" + request.node.name.replace("_", "-")[:40].lower()
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    settings = Settings(
        lake_root=f"s3://{bucket}/alpha", s3_endpoint_url=s3_endpoint, s3_allow_http=True
    )
    return Lake(settings.lake_root, settings.storage_options())


def test_settings_build_safe_s3_options(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    opts = Settings(lake_root="s3://b/p", s3_endpoint_url=s3_endpoint).storage_options()
    assert opts["conditional_put"] == "etag"
    assert opts["AWS_ENDPOINT_URL"] == s3_endpoint
    assert "testing" not in repr(Settings(lake_root="s3://b/p"))


def test_bitemporal_roundtrip_on_s3(s3_lake: Lake) -> None:
    s3_lake.write("prices", prices(2, ["A", "B"], close=10.0), known_at=ts(2))
    assert not s3_lake.write("prices", prices(2, ["A", "B"], close=10.0), known_at=ts(2)).written
    s3_lake.write("prices", prices(2, ["A"], close=11.0), known_at=ts(4))
    d = dt.date(2024, 1, 2)
    before = s3_lake.as_of("prices", known_at=ts(3), valid_at=d).to_pandas()
    after = s3_lake.as_of("prices", known_at=ts(4), valid_at=d).to_pandas()
    assert sorted(before["close"]) == [10.0, 10.0]
    assert sorted(after["close"]) == [10.0, 11.0]
    assert s3_lake.at_version("prices", 1).num_rows == 2
    assert s3_lake.location.table_uri("prices").startswith("s3://")


def test_raw_zone_on_s3_is_create_only(s3_lake: Lake) -> None:
    day = dt.date(2024, 1, 2)
    v1 = s3_lake.land_raw("prices", day, "prices.csv.gz", b"one")
    assert v1.uri.startswith("s3://")
    assert not s3_lake.land_raw("prices", day, "prices.csv.gz", b"one").landed
    v2 = s3_lake.land_raw("prices", day, "prices.csv.gz", b"two")
    assert v2.file_version == 2
    key = v1.uri.split("/raw/", 1)[1]
    assert s3_lake.raw_store.put_if_absent(key, b"overwrite attempt") is False
    assert s3_lake.read_raw(v1) == b"one"


def test_maintenance_on_s3(s3_lake: Lake) -> None:
    for day in range(2, 6):
        s3_lake.write("prices", prices(day, ["A", "B"]), known_at=ts(day))
    report = maintain_table(s3_lake, "prices")
    assert report.checkpoint
    assert s3_lake.status("prices").rows == 8
