"""``alphafactory ingest`` and ``alphafactory quarantine`` against the running simulator.

One story, as a data engineer lives it: load a session, backfill the security master,
hit a day with impossible prices, read why it was held back, release it by hand.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import pytest
from rich.console import Console
from typer.testing import CliRunner

from pipelines.cli import ingest as ingest_cli
from pipelines.cli.main import app
from pipelines.lake import Lake
from pipelines.vendors.simulator import VendorSimulator
from tests.ingest.conftest import (  # noqa: F401  (fixtures re-used by name)
    FAULT_DAYS,
    RunningVendor,
    fault_plan,
    live,
    sim,
    vendor,
)

pytestmark = pytest.mark.integration

runner = CliRunner()
BAD_DAY = FAULT_DAYS["impossible_values"]


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wide terminal, so assertions see whole cells."""
    monkeypatch.setattr(ingest_cli, "console", Console(width=250))
    monkeypatch.setattr(ingest_cli, "err", Console(width=250, stderr=True))


@pytest.fixture
def connected(live: RunningVendor) -> Iterator[Lake]:  # noqa: F811
    """The running vendor with its connections exported; the per-test lake from settings."""
    yield Lake.from_settings()


def test_ingest_and_quarantine_story(
    connected: Lake,
    sim: VendorSimulator,  # noqa: F811
) -> None:
    first = sim.sessions[0]
    code, out = run("ingest", "day", "--date", first.isoformat())
    assert code == 0, out
    for feed in ("vendor_security_master", "vendor_prices", "vendor_fundamentals"):
        assert feed in out
    assert "quarantined" not in out
    assert "Data Docs: file://" in out and "/reports/data_docs/index.html" in out
    assert connected.status("prices").rows == len(sim.clean_prices(first))

    code, out = run("ingest", "day", "--date", "2023-03-04")  # a Saturday
    assert code == 1 and "not a XNYS session (nearest: 2023-03-03 and 2023-03-06)" in out

    # The security master up to the bad day (the missing day is reported, not fatal).
    day_before = sim.sessions[sim.sessions.index(BAD_DAY) - 1]
    code, out = run(
        "ingest", "backfill", "--start", "2023-03-02", "--end", day_before.isoformat(),
        "--feed", "vendor_security_master", "--workers", "2",
    )  # fmt: skip
    assert code == 0, out
    assert "vendor_security_master" in out

    code, out = run(
        "ingest", "day", "--date", BAD_DAY.isoformat(),
        "--feed", "vendor_security_master", "--feed", "vendor_prices",
    )  # fmt: skip
    assert code == 1, out
    assert "quarantined" in out and "close_positive" in out
    (qid,) = set(re.findall(r"Q[0-9a-f]{12}", out))

    code, out = run("quarantine", "list", "--open")
    assert code == 0 and qid in out and "open" in out

    code, out = run("quarantine", "show", qid)
    assert code == 0, out
    assert "close_positive" in out and "high_ge_low" in out and "volume_non_negative" in out
    assert "prices.csv.gz line" in out  # reasons name file and line
    assert "failing rows" in out
    (raw_line,) = [line for line in out.splitlines() if "raw file:" in line]
    assert "prices.csv.gz" in raw_line

    code, out = run("quarantine", "release", qid, "--reason", "looks fine")
    assert code == 1 and "still fails" in out
    code, out = run(
        "quarantine", "release", qid, "--drop-failing-rows", "--actor", "ops",
        "--reason", "vendor confirmed 3 bad rows",
    )  # fmt: skip
    assert code == 0, out
    n = len(sim.clean_prices(BAD_DAY))
    assert f"released {qid}: {n - 3} rows" in out
    assert (
        connected.as_of("prices", known_at=dt.datetime.now(dt.UTC), valid_at=BAD_DAY).num_rows
        == n - 3
    )

    code, out = run("quarantine", "list", "--open")
    assert code == 0 and "no open quarantine records" in out
    code, out = run("quarantine", "list")
    assert qid in out and "released" in out and "ops" in out
    code, out = run("quarantine", "show", "Qdoesnotexist")
    assert code == 2 and "no quarantine record" in out


def test_unknown_feed_is_a_usage_error() -> None:
    code, out = run("ingest", "day", "--date", "2023-03-01", "--feed", "nope")
    assert code == 2 and "unknown feed" in out
