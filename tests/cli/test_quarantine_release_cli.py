"""``alphafactory quarantine`` fails closed (issue 15), as an operator sees it.

A record a newer load superseded is not listed as open, and releasing it is one line that
names the newer batch (nothing loaded). Prices blocked by a quarantined security master
say so, and are released with it, one line each.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from pipelines.cli import ingest as ingest_cli
from pipelines.cli.main import app
from pipelines.cli.status import open_quarantines
from pipelines.config import get_settings
from pipelines.ingest.runtime import VendorSources, ingest_day
from pipelines.lake import Lake
from pipelines.vendors.simulator import VendorSimulator
from tests.ingest.conftest import (  # noqa: F401  (fixtures re-used by name)
    FAULT_DAYS,
    fault_plan,
    feeds,
    fixed_sim,
    inprocess,
    seeded_lake,
    seeded_template,
    sim,
    sources,
)
from tests.ingest.test_release_fails_closed import _master_held

pytestmark = pytest.mark.unit

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wide terminal, so assertions see whole lines."""
    monkeypatch.setattr(ingest_cli, "console", Console(width=400))
    monkeypatch.setattr(ingest_cli, "err", Console(width=400, stderr=True))


def test_superseded_record_is_not_open_and_its_release_is_one_line(
    seeded_lake: Lake,  # noqa: F811
    sources: VendorSources,  # noqa: F811
    fixed_sim: VendorSimulator,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    day = FAULT_DAYS["impossible_values"]
    outcomes = ingest_day(
        seeded_lake, day, "vendor_prices", sources=sources, raise_on_quarantine=False
    )
    (qid,) = [o.quarantine_id for o in outcomes if o.quarantine_id]
    ingest_day(seeded_lake, day, "vendor_prices", sources=inprocess(fixed_sim))
    monkeypatch.setenv("ALPHAFACTORY_LAKE_ROOT", str(tmp_path / "seeded-lake"))
    get_settings.cache_clear()

    code, out = run("quarantine", "list", "--open")
    assert code == 0 and qid not in out and "no open quarantine records" in out
    assert open_quarantines(seeded_lake).empty  # `alphafactory status` agrees
    code, out = run("quarantine", "show", qid)
    assert code == 0 and "status: superseded" in out and "superseded by vendor_prices" in out
    code, out = run("quarantine", "release", qid, "--drop-failing-rows", "--actor", "ops")
    assert code == 0, out
    (line,) = out.strip().splitlines()
    assert line.startswith(f"not released: {qid} superseded: vendor_prices {day}")
    assert "raw version 2" in line and "nothing loaded" in line
    code, out = run("quarantine", "list")
    assert code == 0 and qid in out and "superseded" in out


def test_release_of_an_upstream_record_releases_what_it_blocked(
    lake: Lake,
    sources: VendorSources,  # noqa: F811
    sim: VendorSimulator,  # noqa: F811
) -> None:
    day = sim.sessions[0]
    ingest_day(
        lake,
        day,
        "vendor_security_master",
        sources=sources,
        gate=_master_held,
        raise_on_quarantine=False,
    )
    ingest_day(lake, day, "vendor_prices", sources=sources, raise_on_quarantine=False)
    code, out = run("quarantine", "list", "--open", "--json")
    ids = {r["feed"]: r["quarantine_id"] for r in json.loads(out)}
    master, prices = ids["vendor_security_master"], ids["vendor_prices"]

    code, out = run("quarantine", "show", prices)
    assert code == 0 and f"blocked by {master}" in out

    code, out = run("quarantine", "release", master, "--actor", "ops")
    assert code == 0, out
    lines = out.strip().splitlines()
    assert lines[0].startswith(f"released {master}: ")
    assert lines[1] == (
        f"released {prices} with it: {len(sim.clean_prices(day))} rows of "
        f"vendor_prices {day} prices.csv.gz"
    )
    assert set(re.findall(r"Q[0-9a-f]{12}", out)) == {master, prices}
    code, out = run("quarantine", "list", "--open")
    assert "no open quarantine records" in out
