"""The Makefile: ``make demo`` never compiles QuickFIX; ``make test`` (CI) always has it.

Checked with ``make -n`` (print, do not run) on a copy of the Makefile, pyproject.toml and
``.ci/`` in a temp folder, with the install stamps placed by hand.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]


def _make_n(root: Path, target: str) -> str:
    proc = subprocess.run(
        ["make", "-n", target], cwd=root, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_demo_installs_without_quickfix_and_test_installs_it_afterwards(tmp_path: Path) -> None:
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(REPO / ".ci", tmp_path / ".ci")

    fresh = _make_n(tmp_path, "demo")
    assert "pip install --quiet -e '.[dev]'" in fresh  # pip: the fallback
    assert "uv pip install --quiet" in fresh  # uv first: ~1 min instead of 4-5
    assert "fix-wheel.sh" not in fresh  # issue 18: the demo compiled QuickFIX (404 s)
    assert "alphafactory demo" in fresh
    assert "fix-wheel.sh" in _make_n(tmp_path, "test")  # CI runs the FIX tests
    assert "fix-wheel.sh" in _make_n(tmp_path, "fix")

    # What a finished `make demo` leaves: the interpreter and the install stamp.
    pyproject = (tmp_path / "pyproject.toml").read_bytes()
    fix_wheel = (tmp_path / ".ci" / "fix-wheel.sh").read_bytes()
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.touch()
    stamp = tmp_path / ".venv" / f".installed-{hashlib.sha1(pyproject).hexdigest()[:12]}"
    stamp.touch()
    later = python.stat().st_mtime + 10
    os.utime(stamp, (later, later))

    demo_again = _make_n(tmp_path, "demo")
    assert "pip install" not in demo_again and "fix-wheel.sh" not in demo_again
    after_demo = _make_n(tmp_path, "test")
    assert "fix-wheel.sh" in after_demo  # the demo's install does not count as `fix`
    assert "pip install --quiet -e" not in after_demo

    fix_stamp = (
        tmp_path
        / ".venv"
        / f".fix-installed-{hashlib.sha1(pyproject + fix_wheel).hexdigest()[:12]}"
    )
    fix_stamp.touch()
    os.utime(fix_stamp, (later + 10, later + 10))
    assert "fix-wheel.sh" not in _make_n(tmp_path, "test")
