"""DuckDB over the lake: every table is a view of the same name.

Views scan the Delta tables through ``DeltaTable.to_pyarrow_dataset()`` (filters and
projections are pushed into the scan), so SQL sees every version of every row: use
``known_at`` in the WHERE clause, or :meth:`Lake.as_of`, for point-in-time answers.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

from pipelines.lake.catalog import all_tables
from pipelines.lake.store import Lake


def connect(lake: Lake, tables: list[str] | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with a view per lake table (all declared tables by default)."""
    con = duckdb.connect()
    for name in tables or sorted(all_tables()):
        con.register(name, lake.dataset(name))
    return con


def sql(lake: Lake, query: str, params: dict[str, Any] | None = None) -> pa.Table:
    """Run a DuckDB query over the lake's tables; returns an Arrow table."""
    con = connect(lake)
    try:
        result: pa.Table = con.sql(query, params=params or None).to_arrow_table()
        return result
    finally:
        con.close()
