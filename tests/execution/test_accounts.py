"""The paper broker's account document, on local disk and on S3 (moto's S3-compatible server
on loopback): under the lake root, one per lake, and changes from several writers at once
are never lost."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest

from pipelines.execution import PaperBroker, StaticPriceSource
from pipelines.execution.accounts import (
    AccountStore,
    LocalAccountFile,
    S3AccountObject,
    account_store,
)

pytestmark = pytest.mark.integration

TRADE = dt.date(2024, 1, 3)


def _s3_options(endpoint: str, monkeypatch: pytest.MonkeyPatch, bucket: str) -> dict[str, str]:
    # Test-only credentials for the local fake; real ones come from the environment.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }


def _hammer(store: AccountStore, writers: int = 4, each: int = 10) -> PaperBroker:
    """``writers`` threads, each with its own broker on ``store``, book ``each`` fills."""

    def work(k: int) -> None:
        broker = PaperBroker(store, StaticPriceSource({}))
        for i in range(each):
            broker.inject_fill(f"acct{k}", f"S{i}", "buy", 1.0, 10.0, TRADE)

    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(work, range(writers)))
    return PaperBroker(store, StaticPriceSource({}), auto_work=False)


def test_account_lives_under_the_lake_root(tmp_path: Path) -> None:
    a = account_store(str(tmp_path / "lake-a"), None, "main")
    b = account_store(str(tmp_path / "lake-b"), None, "main")
    assert isinstance(a, LocalAccountFile) and isinstance(b, LocalAccountFile)
    assert a.path == tmp_path / "lake-a" / "broker" / "paper-main.json"
    assert a.path != b.path  # two lakes in one folder never share an account


def test_local_account_loses_no_concurrent_change(tmp_path: Path) -> None:
    broker = _hammer(account_store(str(tmp_path / "lake"), None, "main"))
    broker.connect()
    assert all(broker.positions(f"acct{k}") == {f"S{i}": 1.0 for i in range(10)} for k in range(4))
    assert len(broker.snapshot()[1]) == 40


@pytest.mark.integration
def test_s3_account_loses_no_concurrent_change(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    opts = _s3_options(s3_endpoint, monkeypatch, "accounts")
    store = account_store("s3://accounts/alpha/lake", opts, "main")
    assert isinstance(store, S3AccountObject)
    assert store.location == "s3://accounts/alpha/lake/broker/paper-main.json"
    broker = _hammer(store)
    broker.connect()
    assert all(broker.positions(f"acct{k}") == {f"S{i}": 1.0 for i in range(10)} for k in range(4))
    fills = broker.snapshot()[1]
    assert len(fills) == 40 and len({f.fill_id for f in fills}) == 40
    # The lease is released after every change.
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="accounts")["Contents"]]
    assert keys == ["alpha/lake/broker/paper-main.json"]
