"""``alphafactory ingest`` with the vendor down fails in one line, at once (issue 18: it
retried for 2 minutes, then pointed at a quarantine that did not exist)."""

from __future__ import annotations

import socket

import pytest
from typer.testing import CliRunner

from pipelines.cli.main import app
from pipelines.config import get_settings

pytestmark = pytest.mark.unit


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again on leaving the block


@pytest.fixture
def vendor_down(monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    sftp, http = _closed_port(), _closed_port()
    monkeypatch.setenv("ALPHAFACTORY_VENDOR_SFTP_PORT", str(sftp))
    monkeypatch.setenv("ALPHAFACTORY_VENDOR_HTTP_PORT", str(http))
    monkeypatch.delenv("AIRFLOW_CONN_SFTP_VENDOR", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_HTTP_VENDOR", raising=False)
    get_settings.cache_clear()
    return sftp, http


@pytest.mark.parametrize(
    "args",
    [
        ["ingest", "day", "--date", "2024-07-05"],
        ["ingest", "backfill", "--start", "2024-07-01", "--end", "2024-07-05"],
    ],
)
def test_ingest_with_the_simulator_down_fails_fast_in_one_line(
    vendor_down: tuple[int, int], args: list[str]
) -> None:
    sftp, _ = vendor_down
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [
        f"error: vendor unreachable at 127.0.0.1:{sftp} (connection sftp_vendor: "
        "Connection refused); start the simulator: alphafactory vendor serve"
    ]


def test_one_rest_feed_checks_its_own_connection(vendor_down: tuple[int, int]) -> None:
    _, http = vendor_down
    result = CliRunner().invoke(
        app, ["ingest", "day", "--date", "2024-07-05", "--feed", "vendor_fundamentals"]
    )
    assert result.exit_code == 1
    assert f"vendor unreachable at 127.0.0.1:{http} (connection http_vendor" in result.output
    assert "quarantine" not in result.output
