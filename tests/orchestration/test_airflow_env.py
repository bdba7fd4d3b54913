"""The embedded Airflow environment, its DB bootstrap and the vendor connections."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli.airflow import airflow_app
from pipelines.config import Settings, get_settings
from pipelines.orchestration.airflow_env import (
    DAGS_FOLDER,
    PLUGIN_SHIM_NAME,
    airflow_environment,
    prepare_airflow_home,
)

pytestmark = pytest.mark.unit

SECRETS = ("vendor-dev-password", "vendor-dev-token")


def test_environment_defaults(tmp_path: Path) -> None:
    env = airflow_environment(vendor_state_dir=tmp_path / "no-vendor")
    home = (tmp_path / "airflow").resolve()  # conftest points ALPHAFACTORY_AIRFLOW_HOME here
    v = env.values
    assert env.home == home and v["AIRFLOW_HOME"] == str(home)
    assert v["AIRFLOW__CORE__DAGS_FOLDER"] == str(DAGS_FOLDER)
    assert v["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(home / "plugins")
    assert v["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert v["AIRFLOW__CORE__UNIT_TEST_MODE"] == "False"
    assert v["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert v["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{home}/airflow.db"
    assert int(v["AIRFLOW__CORE__PARALLELISM"]) <= 4
    sftp = json.loads(v["AIRFLOW_CONN_SFTP_VENDOR"])
    assert sftp["conn_type"] == "sftp" and sftp["port"] == 2222 and sftp["login"] == "vendor"
    # No host key configured: none is pinned and the check is never skipped (the source
    # refuses to connect; see test_sftp_connection_without_a_host_key_is_refused).
    assert not {"no_host_key_check", "host_key", "known_hosts"} & set(sftp["extra"])
    http = json.loads(v["AIRFLOW_CONN_HTTP_VENDOR"])
    assert http["port"] == 8089 and http["extra"] == {"Authorization": "Bearer vendor-dev-token"}


def test_secrets_are_never_in_printable_output(tmp_path: Path) -> None:
    env = airflow_environment(vendor_state_dir=tmp_path)
    printable = "\n".join(env.export_lines()) + repr(env) + json.dumps(env.masked())
    for secret in SECRETS:
        assert secret in "".join(env.values.values())
        assert secret not in printable
    # Still useful: host and port are visible.
    assert '"port": 2222' in env.masked()["AIRFLOW_CONN_SFTP_VENDOR"]
    result = CliRunner().invoke(airflow_app, ["env"])
    assert result.exit_code == 0, result.output
    assert "export AIRFLOW_HOME=" in result.output
    for secret in SECRETS:
        assert secret not in result.output


def test_process_env_drops_stray_airflow_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    monkeypatch.setenv("AIRFLOW_CONN_SOMETHING_ELSE", "x://y")
    monkeypatch.setenv("KEEP_ME", "1")
    child = airflow_environment().process_env()
    assert child["AIRFLOW__CORE__UNIT_TEST_MODE"] == "False"
    # issue 13: a user's connection is not stray (a feed names its own connection)
    assert child["AIRFLOW_CONN_SOMETHING_ELSE"] == "x://y"
    assert child["KEEP_ME"] == "1"


def test_process_env_keeps_the_users_connections_but_not_masked_copies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = airflow_environment()
    user_http = json.dumps({"conn_type": "http", "host": "api.acme.example", "port": 443})
    monkeypatch.setenv("AIRFLOW_CONN_HTTP_VENDOR", user_http)
    # what `eval "$(alphafactory airflow env)"` would leave behind: useless, so ignored
    monkeypatch.setenv("AIRFLOW_CONN_SFTP_VENDOR", env.masked()["AIRFLOW_CONN_SFTP_VENDOR"])
    child = env.process_env()
    assert child["AIRFLOW_CONN_HTTP_VENDOR"] == user_http
    assert child["AIRFLOW_CONN_SFTP_VENDOR"] == env.values["AIRFLOW_CONN_SFTP_VENDOR"]


def test_dags_test_passes_the_users_connections_to_airflow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``alphafactory airflow dags-test`` used to drop AIRFLOW_CONN_SFTP_ACME: "The conn_id
    `sftp_acme` isn't defined". The run's process gets it; nothing secret is printed."""
    import subprocess

    from pipelines.orchestration import airflow_env

    acme = json.dumps(
        {"conn_type": "sftp", "host": "sftp.acme.example", "login": "u", "password": "acme-pw"}
    )
    monkeypatch.setenv("AIRFLOW_CONN_SFTP_ACME", acme)
    seen: dict[str, str] = {}

    def fake_run(cmd: list[str], *, env: dict[str, str], **kwargs: object) -> object:
        seen.update(env)
        result = Path(cmd[cmd.index("--result-file") + 1])
        result.write_text(json.dumps({"state": "success", "run_id": "r", "task_states": {}}))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(airflow_env, "ensure_airflow_db", lambda env=None: False)
    monkeypatch.setattr(airflow_env.subprocess, "run", fake_run)
    result = CliRunner().invoke(airflow_app, ["dags-test", "vendor_ingest", "2024-07-05"])
    assert result.exit_code == 0, result.output
    assert seen["AIRFLOW_CONN_SFTP_ACME"] == acme
    assert "acme-pw" not in result.output
    for secret in SECRETS:
        assert secret not in result.output


def test_prepare_home_writes_the_plugin_shim_idempotently() -> None:
    env = airflow_environment()
    prepare_airflow_home(env)
    shim = env.plugins_folder / PLUGIN_SHIM_NAME
    first = shim.stat().st_mtime_ns
    prepare_airflow_home(env)
    assert shim.stat().st_mtime_ns == first
    assert "pipelines.orchestration.plugin import AlphaFactoryPlugin" in shim.read_text()


# --- the connections against the real loopback vendor ----------------------------------


@pytest.fixture(scope="module")
def vendor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from pipelines.vendors.clock import FrozenClock
    from pipelines.vendors.config import MarketConfig, VendorConfig
    from pipelines.vendors.server import run_vendor

    market = MarketConfig(seed=3, universe_size=10, start=date(2024, 1, 2), end=date(2024, 1, 31))
    cfg = VendorConfig(
        market=market,
        state_dir=tmp_path_factory.mktemp("vendor-state"),
        clock=FrozenClock(datetime(2024, 2, 1, tzinfo=UTC)),
        rate_limit=10_000,
    )
    with run_vendor(cfg, warm=False) as endpoints:
        yield endpoints


def _use_connections(monkeypatch: pytest.MonkeyPatch, settings: Settings, **kwargs: object) -> None:
    env = airflow_environment(settings, **kwargs)  # type: ignore[arg-type]
    for name in env.secret_names:
        monkeypatch.setenv(name, env.values[name])


def _settings_for(vendor: object) -> Settings:
    return get_settings().model_copy(
        update={"vendor_sftp_port": vendor.sftp_port, "vendor_http_port": vendor.http_port}  # type: ignore[attr-defined]
    )


@pytest.mark.integration
@pytest.mark.parametrize("pinning", ["explicit_key", "state_dir", "settings_key"])
def test_sftp_connection_reaches_the_vendor(
    vendor: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pinning: str
) -> None:
    from airflow.providers.sftp.hooks.sftp import SFTPHook

    monkeypatch.setenv("HOME", str(tmp_path))  # no developer known_hosts involved
    settings = _settings_for(vendor)
    kwargs: dict[str, object] = {
        "explicit_key": {"vendor_host_key": vendor.host_public_key},  # type: ignore[attr-defined]
        "state_dir": {"vendor_state_dir": vendor.state_dir},  # type: ignore[attr-defined]
        "settings_key": {},
    }[pinning]
    if pinning == "settings_key":
        settings = settings.model_copy(update={"vendor_host_key": vendor.host_public_key})  # type: ignore[attr-defined]
    _use_connections(monkeypatch, settings, **kwargs)
    hook = SFTPHook(ssh_conn_id="sftp_vendor")
    assert hook.no_host_key_check is False and hook.host_key is not None
    assert "daily" in hook.list_directory("/")
    hook.close_conn()


@pytest.mark.integration
def test_sftp_connection_without_a_host_key_is_refused(
    vendor: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from pipelines.ingest.sources import HostKeyError, SFTPHookSource

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # not the project root: no ./var/vendor to fall back on
    _use_connections(monkeypatch, _settings_for(vendor))
    with pytest.raises(HostKeyError, match="no host key"), SFTPHookSource().session():
        pass


@pytest.mark.integration
def test_sftp_connection_rejects_a_wrong_pinned_key(
    vendor: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import paramiko
    from airflow.providers.sftp.hooks.sftp import SFTPHook

    monkeypatch.setenv("HOME", str(tmp_path))
    other = paramiko.Ed25519Key.from_private_key_file(str(_other_key(tmp_path)))
    _use_connections(
        monkeypatch, _settings_for(vendor), vendor_host_key=f"ssh-ed25519 {other.get_base64()}"
    )
    hook = SFTPHook(ssh_conn_id="sftp_vendor")
    hook.conn_retry_attempts = 1
    with pytest.raises(paramiko.SSHException):
        hook.list_directory("/")


def _other_key(tmp_path: Path) -> Path:
    import asyncssh

    path = tmp_path / "other_ed25519"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(path)
    return path


@pytest.mark.integration
def test_http_connection_sends_the_bearer_token(
    vendor: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.providers.http.hooks.http import HttpHook

    _use_connections(monkeypatch, _settings_for(vendor))
    session = HttpHook(method="GET", http_conn_id="http_vendor").get_conn()
    base = f"http://127.0.0.1:{vendor.http_port}"  # type: ignore[attr-defined]
    # The guard answers 401 before routing; 404 for an unknown dataset proves the token passed.
    assert session.get(f"{base}/v1/no-such-dataset", timeout=10).status_code == 404
    import requests

    assert requests.get(f"{base}/v1/no-such-dataset", timeout=10).status_code == 401


def test_sourcing_airflow_env_lets_the_cli_authenticate(tmp_path: Path) -> None:
    """Issue 18: the demo's hint `alphafactory airflow env > af.sh && source af.sh` exported
    the connections with `***` passwords, after which `ingest day` failed "Authentication
    failed". What it prints now exports no secret, and in a shell that sourced it the CLI's
    vendor connections carry the real credentials (from settings)."""
    import os
    import subprocess
    import sys

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    # The demo's simulator state (lake root tmp_path/lake → tmp_path/vendor): its host key.
    key = Ed25519PrivateKey.generate()
    (tmp_path / "vendor").mkdir()
    (tmp_path / "vendor" / "ssh_host_ed25519_key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    result = CliRunner().invoke(airflow_app, ["env"])
    assert result.exit_code == 0, result.output
    exported = [line for line in result.output.splitlines() if line.startswith("export ")]
    assert f"export ALPHAFACTORY_VENDOR_HOST_KEY='{public}'" in exported
    assert any(line.startswith("export AIRFLOW_HOME=") for line in exported)
    assert not [line for line in exported if "***" in line or "AIRFLOW_CONN_" in line]
    script = tmp_path / "af.sh"
    script.write_text(result.output)
    probe = (
        "import json, os\n"
        "from airflow.models.connection import Connection\n"
        "from pipelines.ingest.connections import ensure_vendor_connections\n"
        "ensure_vendor_connections()\n"
        "out = {}\n"
        "for cid in ('sftp_vendor', 'http_vendor'):\n"
        "    c = Connection.from_json(os.environ['AIRFLOW_CONN_' + cid.upper()], conn_id=cid)\n"
        "    out[cid] = {'host': c.host, 'port': c.port, 'password': c.password,\n"
        "                'extra': c.extra_dejson}\n"
        "print(json.dumps(out))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    proc = subprocess.run(
        ["bash", "-c", f'source "{script}" && exec "{sys.executable}" -c "$PROBE"'],
        env={**env, "PROBE": probe},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    conns = json.loads(proc.stdout.strip().splitlines()[-1])
    assert conns["sftp_vendor"]["password"] == "vendor-dev-password"
    assert conns["sftp_vendor"]["port"] == 2222
    assert conns["http_vendor"]["extra"]["Authorization"] == "Bearer vendor-dev-token"
    assert conns["sftp_vendor"]["extra"]["host_key"] == public  # verifiable: SFTP connects


def test_a_masked_connection_left_in_the_environment_is_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A shell that sourced the old, masked output still authenticates."""
    import os

    from pipelines.ingest.connections import ensure_vendor_connections, vendor_connections

    conns = vendor_connections()
    for key, value in conns.redacted.items():
        monkeypatch.setenv(key, value)
    ensure_vendor_connections()
    for key, value in conns.values.items():
        assert os.environ[key] == value
        assert "***" not in os.environ[key]


def test_airflow_tasks_run_one_blas_thread_unless_the_user_chose() -> None:
    """OpenBLAS's worker threads only spin on our K×K and N×K matrices: Airflow's task
    processes get one thread by default; a user's own setting wins."""
    from pipelines.config import BLAS_THREADS_ENV
    from pipelines.orchestration.airflow_env import airflow_environment

    env = airflow_environment()
    assert env.process_env({})[BLAS_THREADS_ENV] == "1"
    assert env.process_env({BLAS_THREADS_ENV: "4"})[BLAS_THREADS_ENV] == "4"
