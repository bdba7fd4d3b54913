"""Integration: the SFTP client against OpenSSH's sshd, the server most vendors run.

sshd is started for the test only (:func:`pipelines.testing.sshd.run_sshd`): on a free
loopback port, with a generated host key and a generated client key, from a generated
``sshd_config`` (no PAM, key auth only, ``internal-sftp``, chrooted to the tree when run
by root). It serves a tree holding the simulator's folders for two days, and
ingestion reads it through Airflow's ``SFTPHook`` exactly as it reads the simulator.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines.ingest.feed_spec import FeedSpec
from pipelines.ingest.flow import ingest_sftp_day
from pipelines.ingest.gate import contract_gate
from pipelines.ingest.sources import SFTPHookSource
from pipelines.lake import Lake
from pipelines.testing.backdate import HISTORY
from pipelines.testing.sshd import Sshd, SshdUnavailable, keygen, run_sshd
from pipelines.timeline import trading_calendar
from pipelines.vendors.simulator import VendorSimulator
from tests.ingest.conftest import SEEDED_DAYS

pytestmark = pytest.mark.integration

CONN_ID = "sftp_openssh"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    try:
        with run_sshd(tmp_path_factory.mktemp("sshd")) as server:
            yield server
    except SshdUnavailable as exc:
        pytest.skip(str(exc))


def test_ingest_from_openssh_sftp_with_key_auth(
    sshd: Sshd,
    sim: VendorSimulator,
    feeds: dict[str, FeedSpec],
    lake: Lake,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The vendor's tree for two days, as the simulator serves it.
    for day in SEEDED_DAYS:
        folder = sshd.root / "daily" / day.isoformat()
        folder.mkdir(parents=True)
        for name, data in sim.day_files(day).items():
            (folder / name).write_bytes(data)
    key_type, key_b64, *_ = sshd.host_public_key.split()
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN_ID.upper()}",
        json.dumps(
            {
                "conn_type": "sftp",
                "host": "127.0.0.1",
                "port": sshd.port,
                "login": sshd.user,
                "extra": {
                    "key_file": str(sshd.client_key),
                    "host_key": f"{key_type} {key_b64}",  # pinned: no trust on first use
                    "look_for_keys": "false",
                },
            }
        ),
    )
    source = SFTPHookSource(CONN_ID)
    # This vendor's day folders live under another root: the feed declaration says where.
    remote_dir = sshd.remote("daily/{date:%Y-%m-%d}")
    master, prices = (
        feeds[n].model_copy(update={"remote_dir": remote_dir})
        for n in ("vendor_security_master", "vendor_prices")
    )
    for day in SEEDED_DAYS:
        prev = trading_calendar().previous(day)
        for feed in (master, prices):
            (outcome,) = ingest_sftp_day(
                lake, feed, day, source, contract_gate, previous_session=prev, backdate=HISTORY
            )
            assert outcome.status == "loaded", outcome.message
        published = sim.publish_at(day)
        assert published is not None
        snap = lake.as_of("prices", known_at=published, valid_at=day)
        assert snap.num_rows == len(sim.clean_prices(day))
        assert set(snap["known_at"].to_pylist()) == {published}
    # Bytes in the raw zone are the served bytes.
    raw = lake.history("raw_manifest", {"feed": "vendor_prices", "file_name": "prices.csv.gz"})
    assert sorted(raw["valid_date"].to_pylist()) == list(SEEDED_DAYS)
    for row in raw.to_pylist():
        served = sshd.root / "daily" / row["valid_date"].isoformat() / "prices.csv.gz"
        assert Path(row["uri"].removeprefix("file://")).read_bytes() == served.read_bytes()
    (again,) = ingest_sftp_day(
        lake,
        prices,
        SEEDED_DAYS[-1],
        source,
        contract_gate,
        previous_session=SEEDED_DAYS[0],
        backdate=HISTORY,
    )
    assert again.status == "unchanged"


# --- host keys fail closed -------------------------------------------------------------


def _vendor_connection(sshd: Sshd, monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    """``sftp_vendor`` as production computes it (settings → connection JSON), pointed at
    sshd and authenticating with the generated client key."""
    from pipelines.config import get_settings
    from pipelines.ingest.connections import vendor_connections

    monkeypatch.setenv("ALPHAFACTORY_VENDOR_SFTP_PORT", str(sshd.port))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    conns = vendor_connections(vendor_username=sshd.user)
    conn = json.loads(conns.values["AIRFLOW_CONN_SFTP_VENDOR"])
    conn["extra"]["key_file"] = str(sshd.client_key)
    monkeypatch.setenv("AIRFLOW_CONN_SFTP_VENDOR", json.dumps(conn))
    return conn


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory that is not the project root (no ./var/vendor, nothing)."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.setenv("HOME", str(tmp_path))  # no developer ~/.ssh/known_hosts involved
    return folder


def test_changed_host_key_is_refused_from_another_folder(
    sshd: Sshd, elsewhere: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.ingest.sources import HostKeyError

    other = keygen(tmp_path / "impostor_ed25519")  # the key we pinned; sshd serves another
    key_type, key_b64, *_ = other.split()
    conn = _vendor_connection(
        sshd, monkeypatch, ALPHAFACTORY_VENDOR_HOST_KEY=f"{key_type} {key_b64}"
    )
    assert "no_host_key_check" not in conn["extra"]
    with pytest.raises(HostKeyError, match="changed"), SFTPHookSource().session():
        pass


def test_missing_host_key_is_refused_from_another_folder(
    sshd: Sshd, elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.ingest.sources import HostKeyError

    conn = _vendor_connection(sshd, monkeypatch)
    assert not {"host_key", "known_hosts", "no_host_key_check"} & set(conn["extra"])
    with pytest.raises(HostKeyError, match="no host key"), SFTPHookSource().session():
        pass


def test_no_host_key_check_is_refused(
    sshd: Sshd, elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.ingest.sources import HostKeyError

    conn = _vendor_connection(sshd, monkeypatch)
    conn["extra"]["no_host_key_check"] = "true"
    monkeypatch.setenv("AIRFLOW_CONN_SFTP_VENDOR", json.dumps(conn))
    with pytest.raises(HostKeyError, match="no_host_key_check"), SFTPHookSource().session():
        pass


@pytest.mark.parametrize("how", ["host_key", "known_hosts"])
def test_correct_host_key_connects_from_another_folder(
    sshd: Sshd, elsewhere: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    key_type, key_b64, *_ = sshd.host_public_key.split()
    if how == "host_key":
        env = {"ALPHAFACTORY_VENDOR_HOST_KEY": f"{key_type} {key_b64}"}
    else:
        known = tmp_path / "vendor_known_hosts"
        known.write_text(f"[127.0.0.1]:{sshd.port} {key_type} {key_b64}\n")
        env = {"ALPHAFACTORY_VENDOR_KNOWN_HOSTS": str(known)}
    (sshd.root / "hello").mkdir(exist_ok=True)
    _vendor_connection(sshd, monkeypatch, **env)
    with SFTPHookSource().session() as session:
        assert "hello" in (session.list_dir(sshd.remote("/")) or [])
