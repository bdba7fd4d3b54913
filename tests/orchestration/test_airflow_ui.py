"""``alphafactory airflow ui``: the four services on the embedded home show the
project's DAGs (issue 18: the README's recipe showed Airflow's example DAGs, never ours)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PROJECT_DAGS = {
    "vendor_ingest",
    "daily_research",
    "portfolio_rebalance",
    "model_retrain",
    "lake_maintenance",
    "leak_audit",
    "backtest_sweep",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _request(url: str, body: dict[str, Any] | None = None, token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _wait(what: str, check: Any, proc: subprocess.Popen[str], timeout: float = 300) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"alphafactory airflow ui exited while waiting for {what}"
        try:
            if result := check():
                return result
        except (urllib.error.URLError, OSError, ValueError, KeyError):
            pass
        time.sleep(2)
    raise AssertionError(f"timed out waiting for {what}")


def _processes_with_home(home: Path) -> list[int]:
    """Live processes whose environment names ``home`` as AIRFLOW_HOME."""
    needle = f"AIRFLOW_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


@pytest.mark.timeout(900)
def test_airflow_ui_shows_the_project_dags_and_stops_cleanly(tmp_path: Path) -> None:
    port = _free_port()
    home = (tmp_path / "airflow").resolve()  # the conftest's ALPHAFACTORY_AIRFLOW_HOME
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONUNBUFFERED"] = "1"  # lines reach the reader as printed
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli.main", "airflow", "ui", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    assert proc.stdout is not None
    stdout = proc.stdout
    reader = threading.Thread(target=lambda: lines.extend(iter(stdout.readline, "")), daemon=True)
    reader.start()
    base = f"http://127.0.0.1:{port}"
    try:
        _wait("the API's health", lambda: _request(f"{base}/api/v2/monitor/health"), proc)
        passwords = home / "simple_auth_manager_passwords.json.generated"
        password = _wait("the admin password", lambda: json.loads(passwords.read_text()), proc)
        token = _request(
            f"{base}/auth/token", {"username": "admin", "password": password["admin"]}
        )["access_token"]

        def dag_ids() -> set[str] | None:
            dags = _request(f"{base}/api/v2/dags?limit=100", token=token)["dags"]
            ids = {d["dag_id"] for d in dags}
            return ids if ids >= PROJECT_DAGS else None

        # The project's DAGs, parsed by the DAG processor from dags/; no example DAG.
        assert _wait("the project's DAGs", dag_ids, proc) == PROJECT_DAGS
        pools = _request(f"{base}/api/v2/pools", token=token)["pools"]
        assert {"solver", "broker"} <= {p["name"] for p in pools}  # scheduled runs need them
        # The command's own health poll runs on its own clock (a loaded CI machine answered
        # the test's requests before the command's): Ctrl-C only once it printed the URL.
        _wait("the printed URL", lambda: any("Airflow UI:" in line for line in lines), proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # Ctrl-C
        proc.wait(timeout=120)
        reader.join(timeout=10)
    out = "".join(lines)
    assert proc.returncode == 0, out
    assert f"Airflow UI: {base}" in out
    assert f"login: admin, password in {home}" in out
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert _processes_with_home(home) == []
