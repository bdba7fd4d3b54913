"""Any stage runs on any worker: each stage of one session in a fresh process whose working
directory is empty, alternating between two such directories, given only the lake URI and
the session. Everything a stage hands on goes through the lake; nothing lands on local disk."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines.execution.records import read_day
from pipelines.lake import Lake
from pipelines.report import pm_report_uri
from tests.daily.helpers import CONFIG, copy_root

pytestmark = [pytest.mark.slow, pytest.mark.unit]
REPO = Path(__file__).resolve().parents[2]
SESSION = dt.date(2024, 6, 6)  # the session after the helper's loop days
STEPS = (
    ("a", "run_stage('research', S)"),
    ("b", "run_stage('risk_model', S)"),
    ("a", "run_stage('optimize', S)"),
    ("b", "run_stage('pretrade', S)"),
    ("a", "record_approval(S, None, 'test')"),
    ("b", "run_stage('execute', S)"),
    ("a", "run_stage('reconcile', S)"),
    ("b", "run_stage('report', S)"),
)


# "fresh": a portfolio's first session, whose reconciliation opens the book (it asked a
# broker object that no earlier stage of the same process had connected, and failed).
@pytest.mark.parametrize("portfolio", [CONFIG.portfolio_id, "fresh"])
def test_every_stage_runs_in_an_empty_working_directory(
    loop_root: Path, tmp_path: Path, portfolio: str
) -> None:
    root = copy_root(loop_root, tmp_path / "root")
    config = tmp_path / "daily.yaml"
    data = CONFIG.model_dump(mode="json")
    data["approval"]["auto_approve"] = True
    data["portfolio_id"] = portfolio
    config.write_text(yaml.safe_dump(data))
    workers = {name: tmp_path / f"worker-{name}" for name in ("a", "b")}
    for folder in workers.values():
        folder.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "ALPHAFACTORY_LAKE_ROOT": str(root / "lake"),
        "ALPHAFACTORY_DAILY_CONFIG": str(config),
    }
    for worker, call in STEPS:
        code = (
            "import json; from pipelines.daily.tasks import run_stage, record_approval; "
            f"S = {SESSION.isoformat()!r}; print(json.dumps({call}, default=str))"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code],
            cwd=workers[worker],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert proc.returncode == 0, f"{call} on worker {worker}:\n{proc.stderr[-4000:]}"
        json.loads(proc.stdout.strip().splitlines()[-1])
    for name, folder in workers.items():
        assert list(folder.iterdir()) == [], f"worker {name} wrote {list(folder.iterdir())}"
    lake = Lake(str(root / "lake"))
    assert len(read_day(lake, "orders", dt.date(2024, 6, 7), portfolio)) > 0
    recon = read_day(lake, "reconciliation", SESSION, portfolio)
    assert not recon.empty and (recon["status"] == "break").sum() == 0
    assert Path(pm_report_uri(lake, portfolio, SESSION)).is_file()
