"""Every AlphaFactoryError ends as one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from pipelines.cli.main import AlphaFactoryGroup, app, error_line
from pipelines.config import get_settings
from pipelines.errors import AlphaFactoryError, ConfigurationError

pytestmark = pytest.mark.unit

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _empty_lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ALPHAFACTORY_LAKE_ROOT", str(tmp_path / "lake"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ["ingest", "day", "--date", "1985-01-02"],
        ["ingest", "backfill", "--start", "1985-01-02", "--end", "1985-02-01"],
        ["research", "features", "1985-01-02"],
        ["backtest", "--start", "1985-01-02", "--end", "1985-03-01"],
        ["airflow", "dags-test", "vendor_ingest", "1985-01-02"],
    ],
)
def test_a_date_outside_the_calendar_is_one_line(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    line = _one_error_line(result.stderr)
    assert "1985-01-02 is outside the XNYS calendar's range 1990-01-01.." in line
    assert result.stdout == ""


def test_a_backtest_before_the_lakes_history_is_one_line() -> None:
    """The calendar's first weeks: the history window reaches past the calendar's start,
    and the answer is still the lake's (no prices), not the calendar's arithmetic."""
    result = runner.invoke(app, ["backtest", "--start", "1990-01-02", "--end", "1990-03-01"])
    assert result.exit_code == 1, result.output
    line = _one_error_line(result.stderr)
    assert "holds no prices up to 1990-01-02" in line


def test_the_message_is_not_rich_markup_and_multiline_messages_fold() -> None:
    """A message with brackets (rich markup) and newlines prints verbatim, on one line."""
    boom = typer.Typer(cls=AlphaFactoryGroup)

    @boom.command()
    def fail() -> None:
        raise ConfigurationError("feed file [bold]x.yaml[/bold]:\n  rule 3 is wrong\n")

    @boom.command()
    def other() -> None:  # a second command keeps ``fail`` a subcommand
        pass

    result = runner.invoke(boom, ["fail"])
    assert result.exit_code == 1
    line = _one_error_line(result.stderr)
    assert line == "error: feed file [bold]x.yaml[/bold]:; rule 3 is wrong"
    assert error_line(AlphaFactoryError("")) == "error: AlphaFactoryError"


def test_other_exceptions_still_raise() -> None:
    boom = typer.Typer(cls=AlphaFactoryGroup)

    @boom.command()
    def fail() -> None:
        raise KeyError("a bug")

    @boom.command()
    def other() -> None:
        pass

    result = runner.invoke(boom, ["fail"])
    assert result.exit_code == 1
    assert isinstance(result.exception, KeyError)


@pytest.mark.slow
def test_the_installed_entry_point_prints_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "ALPHAFACTORY_LAKE_ROOT": str(tmp_path / "lake"), "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli.main", "research", "score", "2300-01-02"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    line = _one_error_line(proc.stderr)
    assert "2300-01-02 is outside the XNYS calendar's range" in line
