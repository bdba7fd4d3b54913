"""Every test file declares its level, so ``make unit`` can leave out what needs servers.

Levels: ``unit`` (in-process, no server, no Airflow run), ``integration`` (a real server
on loopback: SFTP/sshd, HTTP, S3, PostgreSQL, Redis, Celery, FIX over TCP, headless
Chromium), ``e2e`` (whole DAGs through Airflow). The module's ``pytestmark`` is the file's
default level; a test that needs more carries its own ``integration``/``e2e`` marker, so
the fast loop is ``-m "not integration and not e2e"`` (``make unit``), not ``-m unit``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

LEVELS = {"unit", "integration", "e2e"}
TESTS = Path(__file__).resolve().parent
TEST_FILES = sorted(TESTS.rglob("test_*.py"))


def module_levels(path: Path) -> list[str]:
    """The level markers named in the module-level ``pytestmark`` of ``path``."""
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if not any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in targets):
            continue
        return [
            sub.attr
            for sub in ast.walk(value)
            if isinstance(sub, ast.Attribute)
            and isinstance(sub.value, ast.Attribute)
            and sub.value.attr == "mark"
            and sub.attr in LEVELS
        ]
    return []


def test_every_test_file_declares_one_level() -> None:
    problems = {}
    for path in TEST_FILES:
        levels = module_levels(path)
        if len(levels) != 1:
            problems[str(path.relative_to(TESTS.parent))] = levels
    assert not problems, (
        "each test file needs exactly one module-level level marker, e.g. "
        "`pytestmark = pytest.mark.unit` (unit | integration | e2e; see tests/test_markers.py); "
        f"found: {problems}"
    )


def test_collected_tests_all_have_a_level(request: pytest.FixtureRequest) -> None:
    """What pytest collected in this run (whatever subset) carries a level marker each."""
    missing = [
        item.nodeid
        for item in request.session.items
        if not any(m.name in LEVELS for m in item.iter_markers())
    ]
    assert not missing, f"tests without a unit/integration/e2e marker: {missing}"
