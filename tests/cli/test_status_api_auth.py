"""``alphafactory status`` and an API server that wants a token (issue 15: it got 401 and
silently fell back to the metadata DB). It now signs in with the embedded home's generated
admin password; when it cannot, the source it prints says why it fell back."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pipelines.cli.status import dag_runs
from pipelines.config import get_settings
from pipelines.orchestration.ui import PASSWORDS_FILE

pytestmark = pytest.mark.integration  # a real HTTP server on loopback


class _Api(BaseHTTPRequestHandler):
    token = "t0k3n"

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        creds = json.loads(self.rfile.read(length))
        if creds == {"username": "admin", "password": "s3cret"}:
            self._send(201, {"access_token": self.token})
        else:
            self._send(401, {"detail": "bad credentials"})

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            self._send(401, {"detail": "Not authenticated"})
            return
        dag_id = self.path.split("/")[4]
        self._send(200, {"dag_runs": [{"run_id": f"{dag_id}-1", "state": "success"}]})


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    home = tmp_path / "airflow"
    home.mkdir()
    monkeypatch.setenv("ALPHAFACTORY_AIRFLOW_HOME", str(home))
    monkeypatch.setenv("ALPHAFACTORY_AIRFLOW_API_URL", f"http://127.0.0.1:{server.server_port}")
    get_settings.cache_clear()
    yield home
    server.shutdown()
    get_settings.cache_clear()


def test_status_signs_in_with_the_embedded_admin_password(api: Path) -> None:
    (api / PASSWORDS_FILE).write_text(json.dumps({"admin": "s3cret"}))
    source, runs = dag_runs()
    assert source.startswith("REST API"), source
    assert {r["run_id"] for r in runs} >= {"vendor_ingest-1", "portfolio_rebalance-1"}


def test_status_says_why_it_fell_back(api: Path) -> None:
    (api / PASSWORDS_FILE).write_text(json.dumps({"admin": "wrong"}))
    source, _runs = dag_runs()
    assert "answered HTTP 401" in source, source
