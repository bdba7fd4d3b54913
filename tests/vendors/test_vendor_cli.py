"""The ``vendor`` CLI sub-app (render only; ``serve`` blocks until Ctrl-C)."""

from __future__ import annotations

import gzip
import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli.vendor import vendor_app
from pipelines.vendors.config import MarketConfig
from pipelines.vendors.faults import FaultPlan
from pipelines.vendors.simulator import VendorSimulator

pytestmark = pytest.mark.unit


def test_render_writes_a_day_folder(tmp_path: Path) -> None:
    faults = tmp_path / "faults.yaml"
    faults.write_text("2023-03-03: [schema_rename]\n")
    args = ["render", "2023-03-03", "--out", str(tmp_path), "--universe-size", "40"]
    args += ["--start", "2023-01-03", "--end", "2023-03-31", "--seed", "3", "--faults", str(faults)]
    result = CliRunner().invoke(vendor_app, args)
    assert result.exit_code == 0, result.output
    folder = tmp_path / "2023-03-03"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {f["name"] for f in manifest["files"]} <= {p.name for p in folder.iterdir()}
    header = gzip.decompress((folder / "prices.csv.gz").read_bytes()).decode().splitlines()[0]
    assert "PX_CLOSE" in header
    # Same bytes as the in-process API with the same parameters.
    sim = VendorSimulator(
        MarketConfig(seed=3, universe_size=40, start=date(2023, 1, 3), end=date(2023, 3, 31)),
        faults=FaultPlan.from_yaml(faults),
    )
    assert (folder / "prices.csv.gz").read_bytes() == sim.day_files(date(2023, 3, 3))[
        "prices.csv.gz"
    ]


def test_fault_on_a_holiday_is_rejected() -> None:
    cfg = MarketConfig(universe_size=10, start=date(2023, 6, 1), end=date(2023, 7, 31))
    with pytest.raises(ValueError, match="non-session"):
        VendorSimulator(cfg, faults=FaultPlan.from_dict({"2023-07-04": ["missing"]}))
