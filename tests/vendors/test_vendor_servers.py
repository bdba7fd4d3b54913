"""Integration: real SFTP (paramiko) and REST (requests) clients against the servers."""

from __future__ import annotations

import hashlib
import io
import json
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncssh
import pandas as pd
import paramiko
import pytest
import requests

from pipelines.vendors.rest_api import ErrorInjector
from pipelines.vendors.server import VendorEndpoints
from pipelines.vendors.simulator import VendorSimulator

pytestmark = pytest.mark.integration


def _sftp(
    ep: VendorEndpoints, *, key: bool = False
) -> tuple[paramiko.Transport, paramiko.SFTPClient]:
    transport = paramiko.Transport((ep.host, ep.sftp_port))
    host_key = paramiko.Ed25519Key(data=paramiko.Message(_pub_blob(ep.host_public_key)).asbytes())
    if key:
        pkey = paramiko.Ed25519Key.from_private_key_file(str(ep.client_key_path))
        transport.connect(hostkey=host_key, username=ep.username, pkey=pkey)
    else:
        transport.connect(hostkey=host_key, username=ep.username, password=ep.password)
    client = paramiko.SFTPClient.from_transport(transport)
    assert client is not None
    return transport, client


def _pub_blob(openssh_line: str) -> bytes:
    import base64

    return base64.b64decode(openssh_line.split()[1])


def _get(ep: VendorEndpoints, path: str, **params: Any) -> requests.Response:
    return requests.get(
        f"{ep.base_url}{path}",
        params=params,
        headers={"Authorization": f"Bearer {ep.token}"},
        timeout=10,
    )


def _drain(
    ep: VendorEndpoints, dataset: str, **params: Any
) -> tuple[list[dict[str, Any]], str | None, int]:
    """Follow next_page_token to the end; returns (records, cursor, pages)."""
    out: list[dict[str, Any]] = []
    r = _get(ep, f"/v1/{dataset}", **params)
    pages = 1
    while True:
        assert r.status_code == 200, r.text
        body = r.json()
        out.extend(body["data"])
        if body["next_page_token"] is None:
            return out, body["cursor"], pages
        assert body["cursor"] is None
        r = _get(
            ep,
            f"/v1/{dataset}",
            page_token=body["next_page_token"],
            page_size=params.get("page_size", 1000),
        )
        pages += 1


def test_sftp_password_lists_and_downloads_a_day_with_valid_manifest(vendor) -> None:
    ep = vendor.endpoints
    transport, sftp = _sftp(ep)
    try:
        assert sftp.listdir("/") == ["daily"]
        days = sftp.listdir("/daily")
        assert days[0] == "2023-01-03" and days == sorted(days)
        assert "2023-03-07" not in days  # missing-day fault
        day_dir = "/daily/2023-03-03"
        names = sftp.listdir(day_dir)
        assert names[-1] == "manifest.json"
        manifest = json.loads(sftp.open(f"{day_dir}/manifest.json").read())
        for entry in manifest["files"]:
            data = sftp.open(f"{day_dir}/{entry['name']}").read()
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
            assert sftp.stat(f"{day_dir}/{entry['name']}").st_size == entry["size"]
        prices = pd.read_csv(
            io.BytesIO(sftp.open(f"{day_dir}/prices.csv.gz").read()), compression="gzip"
        )
        assert list(prices.columns[:3]) == ["SECID", "TICKER", "TRADE_DATE"]
        with pytest.raises(OSError):
            sftp.open(f"{day_dir}/new.csv", "w")
    finally:
        transport.close()


def test_sftp_public_key_auth_and_bad_password(vendor, tmp_path: Path) -> None:
    ep = vendor.endpoints
    transport, sftp = _sftp(ep, key=True)
    try:
        assert "2023-03-03" in sftp.listdir("/daily")
    finally:
        transport.close()
    bad = paramiko.Transport((ep.host, ep.sftp_port))
    try:
        with pytest.raises(paramiko.AuthenticationException):
            bad.connect(username=ep.username, password="wrong")
    finally:
        bad.close()
    stranger_path = tmp_path / "stranger_key"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(stranger_path)
    stranger = paramiko.Ed25519Key.from_private_key_file(str(stranger_path))
    t = paramiko.Transport((ep.host, ep.sftp_port))
    try:
        with pytest.raises(paramiko.AuthenticationException):
            t.connect(username=ep.username, pkey=stranger)
    finally:
        t.close()


def test_sftp_folder_invisible_until_publish_time(vendor) -> None:
    ep, clock = vendor.endpoints, vendor.clock
    day = date(2023, 6, 1)
    publish = datetime(2023, 6, 1, 22, 0, tzinfo=UTC)  # 18:00 EDT
    saved = clock.now()
    transport, sftp = _sftp(ep)
    try:
        clock.set(publish - timedelta(seconds=1))
        assert day.isoformat() not in sftp.listdir("/daily")
        with pytest.raises(FileNotFoundError):
            sftp.stat(f"/daily/{day}")
        with pytest.raises(FileNotFoundError):
            sftp.open(f"/daily/{day}/manifest.json")
        clock.set(publish)
        assert sftp.listdir("/daily")[-1] == day.isoformat()
        assert "manifest.json" in sftp.listdir(f"/daily/{day}")
        # Late fault: 2023-03-06 appears five hours after 18:00 EST.
        clock.set(datetime(2023, 3, 7, 3, 59, tzinfo=UTC))
        assert "2023-03-06" not in sftp.listdir("/daily")
        clock.set(datetime(2023, 3, 7, 4, 0, tzinfo=UTC))
        assert "2023-03-06" in sftp.listdir("/daily")
    finally:
        clock.set(saved)
        transport.close()


def test_rest_requires_bearer_token(vendor) -> None:
    ep = vendor.endpoints
    assert requests.get(f"{ep.base_url}/v1/fundamentals", timeout=10).status_code == 401
    r = requests.get(
        f"{ep.base_url}/v1/sentiment", headers={"Authorization": "Bearer nope"}, timeout=10
    )
    assert r.status_code == 401
    assert requests.get(f"{ep.base_url}/v1/health", timeout=10).status_code == 200
    assert _get(ep, "/v1/unknown").status_code == 404
    assert _get(ep, "/v1/fundamentals", page_size=0).status_code == 400
    assert _get(ep, "/v1/fundamentals", page_token="garbage!").status_code == 400


def test_rest_pagination_and_since_cursor(vendor, sim: VendorSimulator) -> None:
    ep, clock = vendor.endpoints, vendor.clock
    saved = clock.now()
    try:
        t1 = datetime(2023, 6, 1, 12, 0, tzinfo=UTC)
        clock.set(t1)
        recs, cursor, pages = _drain(ep, "fundamentals", page_size=97)
        expected = sim.fundamentals(until_clock=t1)
        assert len(recs) == len(expected) and pages == -(-len(expected) // 97)
        assert [r["security_id"] for r in recs] == expected["security_id"].tolist()
        assert cursor == recs[-1]["published_at"]
        pubs = [r["published_at"] for r in recs]
        assert pubs == sorted(pubs) and max(pubs) <= "2023-06-01T12:00:00Z"

        # Nothing new at the same clock: empty page, cursor unchanged.
        again, same_cursor, _ = _drain(ep, "fundamentals", since=cursor)
        assert again == [] and same_cursor == cursor

        t2 = t1 + timedelta(days=60)
        clock.set(t2)
        new, cursor2, _ = _drain(ep, "fundamentals", since=cursor, page_size=50)
        since_ts = datetime.fromisoformat(cursor.replace("Z", "+00:00"))  # type: ignore[union-attr]
        expected_new = sim.fundamentals(since=since_ts, until_clock=t2)
        assert len(new) == len(expected_new) > 0
        assert all(r["published_at"] > cursor for r in new)  # type: ignore[operator]
        assert cursor2 == new[-1]["published_at"]

        # Sentiment pages cross day boundaries without gaps or repeats.
        clock.set(datetime(2023, 1, 9, 22, 0, tzinfo=UTC))
        sent, _, _ = _drain(ep, "sentiment", page_size=333)
        frame = sim.sentiment(until_clock=clock.now())
        assert [(r["security_id"], r["date"]) for r in sent] == list(
            zip(frame["security_id"], frame["date"].astype(str), strict=True)
        )
        master, _, _ = _drain(ep, "security-master", page_size=64)
        expected_master = sim.security_master(until_clock=clock.now())
        assert [r["security_id"] for r in master] == expected_master["security_id"].tolist()
        assert master[0]["change_type"] == "INITIAL"
        assert len(master) >= sim.config.universe_size
    finally:
        clock.set(saved)


def test_rest_rate_limit_429_with_retry_after(make_vendor) -> None:
    with make_vendor(rate_limit=3, rate_window_seconds=1.0) as ep:
        codes = [_get(ep, "/v1/fundamentals", page_size=1).status_code for _ in range(3)]
        assert codes == [200, 200, 200]
        r = _get(ep, "/v1/fundamentals", page_size=1)
        assert r.status_code == 429
        assert 1 <= int(r.headers["Retry-After"]) <= 1
        time.sleep(float(r.headers["Retry-After"]) + 0.05)
        assert _get(ep, "/v1/fundamentals", page_size=1).status_code == 200


def test_rest_deterministic_5xx(sim: VendorSimulator, make_vendor) -> None:
    with make_vendor(error_rate=0.3) as ep:
        codes = [_get(ep, "/v1/fundamentals", page_size=1).status_code for _ in range(30)]
    predicted = ErrorInjector(seed=sim.config.seed, rate=0.3)
    assert codes == [503 if predicted.would_fail(n) else 200 for n in range(30)]
    assert 3 <= codes.count(503) <= 20
