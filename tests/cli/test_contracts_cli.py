"""``alphafactory contracts list|show``: which file each contract resolves to, and what it says."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli.main import app
from pipelines.config import get_settings
from pipelines.contracts.spec import CONTRACTS_DIR

pytestmark = pytest.mark.unit
runner = CliRunner()


def test_list_and_show_name_the_user_file_and_the_effective_rule(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "corporate_actions.yaml").write_text(
        "extends: corporate_actions\nrules: [{name: ex_date_window, max_future_days: 180}]\n"
    )
    monkeypatch.setenv("ALPHAFACTORY_CONTRACT_PATH", str(mine))
    get_settings.cache_clear()

    result = runner.invoke(app, ["contracts", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].strip() == f"1. {mine.resolve()}"
    assert lines[2].strip() == f"2. {CONTRACTS_DIR}  (shipped)"
    (corp,) = [line for line in lines if line.startswith("corporate_actions ")]
    assert corp.split()[1:] == [
        str(mine.resolve() / "corporate_actions.yaml"),
        "(extends",
        f"{CONTRACTS_DIR / 'corporate_actions.yaml'})",
    ]
    (prices,) = [line for line in lines if line.startswith("prices ")]
    assert prices.split()[1] == str(CONTRACTS_DIR / "prices.yaml")

    result = runner.invoke(app, ["contracts", "show", "corporate_actions"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"# corporate_actions: {mine.resolve()}")
    window = result.output.split("- name: ex_date_window", 1)[1].split("- name:", 1)[0]
    assert "max_future_days: 180" in window


def test_a_broken_user_contract_fails_list_and_show(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "corporate_actions.yaml").write_text(
        "extends: corporate_actions\nrules: [{name: ex_date_windw, max_future_days: 180}]\n"
    )
    monkeypatch.setenv("ALPHAFACTORY_CONTRACT_PATH", str(tmp_path))
    get_settings.cache_clear()

    result = runner.invoke(app, ["contracts", "list"])
    assert result.exit_code == 1
    assert "corporate_actions  error:" in result.output and "ex_date_windw" in result.output
    result = runner.invoke(app, ["contracts", "show", "corporate_actions"])
    assert result.exit_code == 1
    assert "ex_date_windw" in result.output
