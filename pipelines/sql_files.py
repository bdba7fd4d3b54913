"""Load SQL files from the repository's ``sql/`` folder (SQL lives in files, not strings)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

SQL_ROOT = Path(__file__).resolve().parent.parent / "sql"


@cache
def load_sql(relative: str) -> str:
    """Text of ``sql/<relative>``; raises FileNotFoundError naming the path."""
    path = SQL_ROOT / relative
    if not path.is_file():
        raise FileNotFoundError(f"SQL file not found: {path}")
    return path.read_text()


def quote_ident(name: str) -> str:
    """A DuckDB identifier, double-quoted, so column names can never inject SQL."""
    return '"' + name.replace('"', '""') + '"'
