"""The CLI's output is its own progress: no library log lines or import warnings (issue 18:
the demo mixed 5 asyncssh CryptographyDeprecationWarnings and Great Expectations INFO
lines into its progress)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]

# A command that does what the demo does to the terminal: imports asyncssh (the vendor
# simulator), imports Airflow's hooks (which install Airflow's INFO log handler on stdout),
# logs at INFO from Great Expectations and from our own modules, and prints its progress.
NOISY = textwrap.dedent(
    """
    import logging, sys
    from rich.console import Console
    from pipelines.cli.main import app

    console = Console(width=200)

    @app.command("noisy-test")
    def noisy() -> None:
        import asyncssh  # noqa: F401
        from airflow.providers.sftp.hooks.sftp import SFTPHook  # noqa: F401
        logging.getLogger("great_expectations.data_context").info("ephemeral docs site")
        logging.getLogger("pipelines.ingest.sources").info("fetched 490 records")
        console.print("PROGRESS one")
        logging.getLogger("pipelines.ingest.sources").warning("a real WARNING stays")
        console.print("PROGRESS two")

    app(sys.argv[1:])
    """
)


def _run(tmp_path: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env |= {"PYTHONPATH": str(REPO), "AIRFLOW_HOME": str(tmp_path / "airflow")}
    env.pop("PYTHONWARNINGS", None)
    proc = subprocess.run(
        [sys.executable, "-c", NOISY, *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def test_progress_is_not_mixed_with_library_logs_or_warnings(tmp_path: Path) -> None:
    out = _run(tmp_path, "noisy-test")
    assert "CryptographyDeprecationWarning" not in out
    assert "ephemeral docs site" not in out
    assert "fetched 490 records" not in out
    assert "a real WARNING stays" in out
    lines = [line for line in out.splitlines() if line.strip()]
    progress = [line for line in lines if line.startswith("PROGRESS")]
    assert progress == ["PROGRESS one", "PROGRESS two"]


def test_verbose_keeps_the_log_lines(tmp_path: Path) -> None:
    out = _run(tmp_path, "--verbose", "noisy-test")
    assert "fetched 490 records" in out


def test_log_to_file_keeps_records_and_warnings_in_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # what `alphafactory demo` does: its terminal is its progress, the rest is in a file
    import logging
    import warnings

    from pipelines.cli.quiet import log_to_file

    path = tmp_path / "demo" / "logs" / "demo.log"
    with log_to_file(path):
        logging.getLogger("pipelines.ingest.sources").warning("a WARNING for the file")
        warnings.warn("TripleDES has been moved", UserWarning, stacklevel=1)
    logging.getLogger("pipelines.ingest.sources").warning("after the block")
    captured = capsys.readouterr()
    assert "a WARNING for the file" not in captured.out + captured.err
    assert "TripleDES" not in captured.out + captured.err
    text = path.read_text()
    assert "WARNING pipelines.ingest.sources: a WARNING for the file" in text
    assert "TripleDES has been moved" in text
    assert "after the block" not in text


LOGGED = textwrap.dedent(
    """
    import logging, sys, warnings
    from pathlib import Path
    from rich.console import Console
    from pipelines.cli.main import app
    from pipelines.cli.quiet import log_to_file, silence_console_handlers

    console = Console(width=200)

    @app.command("logged-test")
    def logged() -> None:
        with log_to_file(Path("demo/logs/demo.log")):
            console.print("PROGRESS one")
            import asyncssh  # noqa: F401
            from airflow.providers.sftp.hooks.sftp import SFTPHook  # noqa: F401
            silence_console_handlers()  # what the demo does at each step
            logging.getLogger("great_expectations.core").warning("a library WARNING")
            warnings.warn("a library UserWarning", UserWarning, stacklevel=1)
            console.print("PROGRESS two")

    app(sys.argv[1:])
    """
)


def test_log_to_file_after_airflow_installed_its_console_handler(tmp_path: Path) -> None:
    # issue 18: library warnings and log lines interleaved with the demo's progress
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env |= {"PYTHONPATH": str(REPO), "AIRFLOW_HOME": str(tmp_path / "airflow")}
    env.pop("PYTHONWARNINGS", None)
    proc = subprocess.run(
        [sys.executable, "-c", LOGGED, "logged-test"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert lines == ["PROGRESS one", "PROGRESS two"]
    text = (tmp_path / "demo" / "logs" / "demo.log").read_text()
    assert "a library WARNING" in text
    assert "a library UserWarning" in text
