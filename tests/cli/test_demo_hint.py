"""The demo's closing hint runs as printed (issue 18: it exported masked passwords)."""

from __future__ import annotations

import datetime as dt
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli.demo import demo_log_dir, next_commands
from pipelines.cli.main import app

pytestmark = pytest.mark.unit


def test_every_command_of_the_hint_exists_with_its_options() -> None:
    runner = CliRunner()
    commands = [
        part.split(">")[0].strip()
        for command, _ in next_commands(dt.date(2026, 12, 4))
        for part in command.split("&&")
        if part.strip().startswith("alphafactory")
    ]
    assert len(commands) == 5
    for command in commands:
        args = shlex.split(command)[1:]
        # --help after the options: typer parses the options given and exits 0 only when
        # the command and every option exist
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0, (command, result.output)


def test_the_hint_names_the_demo_session_and_exports_no_secret() -> None:
    text = " ".join(c for c, _ in next_commands(dt.date(2026, 12, 4)))
    assert "ingest day --date 2026-12-04" in text
    assert "***" not in text


def test_logs_go_beside_the_lake(tmp_path: Path) -> None:
    assert demo_log_dir(tmp_path / "var" / "lake") == tmp_path / "var" / "demo" / "logs"
