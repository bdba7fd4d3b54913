"""Data Docs of an S3 lake go under the lake's own ``reports/`` prefix (they landed in the
worker's local ``./var`` before), and the API server reads them back from there; moto's
S3-compatible server stands in for S3."""

from __future__ import annotations

import datetime as dt

import boto3
import pytest

from pipelines.config import get_settings
from pipelines.contracts import ValidationContext, validate_frame
from pipelines.contracts.data_docs import (
    INDEX,
    REPORTS_URL_ENV,
    data_docs_location,
    data_docs_url,
    index_written,
    read_report,
    write_validation_page,
)
from pipelines.testing.contract_frames import price_frame, publish_time, security_ids

pytestmark = pytest.mark.integration

DAY = dt.date(2024, 3, 5)


@pytest.fixture
def s3_lake_root(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    # Test-only credentials for the local fake; real ones come from the environment.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(
        Bucket="docs-lake"
    )
    monkeypatch.setenv("ALPHAFACTORY_LAKE_ROOT", "s3://docs-lake/alpha")
    monkeypatch.setenv("ALPHAFACTORY_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("ALPHAFACTORY_S3_ALLOW_HTTP", "true")
    monkeypatch.delenv(REPORTS_URL_ENV, raising=False)
    get_settings.cache_clear()
    return "s3://docs-lake/alpha"


def test_data_docs_of_an_s3_lake_go_to_its_reports_prefix(s3_lake_root: str) -> None:
    frame = price_frame(20, [DAY])
    report = validate_frame(
        "prices",
        frame,
        ValidationContext(
            feed="vendor_prices",
            logical_date=DAY,
            source_files=("prices.csv.gz",),
            previous_row_count=20,
            known_security_ids=set(security_ids(20)),
            expected_publish_time=publish_time(DAY),
            row_origin=None,
        ),
    )
    assert data_docs_location() == f"{s3_lake_root}/reports/data_docs"
    assert not index_written()
    page = write_validation_page(report, data_docs_location())
    assert page.startswith(f"{s3_lake_root}/reports/data_docs/validations/")
    assert index_written()
    name = page.rsplit("/", 1)[-1]
    html = read_report(f"data_docs/validations/{name}")
    assert html is not None and b"Great Expectations" in html
    index = read_report(f"data_docs/{INDEX}")
    assert index is not None and name.encode() in index
    # an s3:// URI is no browser address: without a published base it is given to copy
    assert data_docs_url([page]) == page
    assert data_docs_url([page], "https://reports.example") == (
        f"https://reports.example/data_docs/validations/{name}"
    )
