"""Feature names without importing the feature code: for DAG files, at parse time.

It lives outside :mod:`pipelines.features` (whose ``__init__`` imports the registry, hence
numpy, pandas and DuckDB) because DAG parsing must stay cheap, yet a feature written in a new file
must appear as a task without touching any other file. So this scans the same places the
registry imports from — every module under ``pipelines/features/library``, ``sql/features``
and the ``ALPHAFACTORY_FEATURE_PATHS`` directories (setting ``feature_paths``) — and reads names statically: the
``name=`` string of each ``@feature(...)`` decorator (Python's ``ast``) and the ``-- name:``
header of each SQL file. :func:`pipelines.features.registry.registry` is the full, validated
model the tasks use; a test checks both agree.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

from pipelines.config import get_settings

LIBRARY_DIR = Path(__file__).resolve().parents[1] / "features" / "library"
SQL_DIR = Path(__file__).resolve().parents[2] / "sql" / "features"


def _decorated_names(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            if not isinstance(deco, ast.Call):
                continue
            func = deco.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called != "feature":
                continue
            for kw in deco.keywords:
                if kw.arg == "name" and isinstance(kw.value, ast.Constant):
                    names.append(str(kw.value.value))
            if deco.args and isinstance(deco.args[0], ast.Constant):
                names.append(str(deco.args[0].value))
    return names


def _sql_name(path: Path) -> str | None:
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("--"):
            return None
        key, _, value = stripped.lstrip("-").strip().partition(":")
        if key.strip() == "name":
            return value.strip().strip("'\"")
    return None


def _dirs() -> list[Path]:
    extra = [p for p in get_settings().feature_paths.split(os.pathsep) if p]
    return [Path(p).resolve() for p in extra]


def feature_names() -> list[str]:
    """Every registered feature name, sorted (static scan; see the module docstring)."""
    names: set[str] = set()
    extra = _dirs()
    for directory in [LIBRARY_DIR, *extra]:
        if directory.is_dir():
            for path in sorted(
                directory.rglob("*.py") if directory == LIBRARY_DIR else directory.glob("*.py")
            ):
                names.update(_decorated_names(path))
    for directory in [SQL_DIR, *extra]:
        if directory.is_dir():
            for path in sorted(directory.glob("*.sql")):
                name = _sql_name(path)
                if name:
                    names.add(name)
    return sorted(names)
