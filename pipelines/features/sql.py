"""SQL features: one ``.sql`` file = one feature, run by DuckDB over a long view.

File format — a header of ``--`` comment lines holding YAML, then one query::

    -- name: book_to_price_sector_rel
    -- inputs: [book_equity, market_cap, sector, in_universe]
    -- lookback: 0
    -- description: book/price minus its sector median per date
    SELECT date, security_id, <expr> AS value FROM panel ...

The query runs over a view named ``panel`` with columns ``date`` (DATE),
``security_id`` (VARCHAR) and the declared input fields, covering exactly the
rows the feature may read, and must return ``(date, security_id, value)`` with
at most one row per cell. Cells it does not return are NaN.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import yaml

from pipelines.features.spec import FeatureDefinitionError, FeatureSpec
from pipelines.pit.panel import Panel, from_long, to_long_arrow

_REQUIRED_KEYS = ("name", "inputs", "lookback")


def parse_sql_feature(path: Path) -> FeatureSpec:
    """Read a ``.sql`` feature file; :class:`FeatureDefinitionError` if its header is incomplete."""
    text = path.read_text()
    header: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("--"):
            break
        header.append(stripped[2:].removeprefix(" "))
    meta = yaml.safe_load("\n".join(header)) or {}
    if not isinstance(meta, dict) or any(k not in meta for k in _REQUIRED_KEYS):
        raise FeatureDefinitionError(f"{path}: header must declare {', '.join(_REQUIRED_KEYS)}")
    inputs = meta["inputs"]
    if isinstance(inputs, str):
        inputs = [s.strip() for s in inputs.split(",") if s.strip()]
    return FeatureSpec(
        name=str(meta["name"]),
        inputs=tuple(str(i) for i in inputs),
        lookback=int(meta["lookback"]),
        kind="sql",
        source=str(path),
        description=str(meta.get("description", "")),
        sql=text,
    )


def run_sql_feature(spec: FeatureSpec, panel: Panel) -> np.ndarray:
    """Evaluate a SQL feature over every row of ``panel``; returns (T, N) float64."""
    assert spec.sql is not None
    table = to_long_arrow(panel, spec.inputs)
    # one thread: these queries are small and the run is CPU-bound, so parallel workers
    # only add scheduling and merge work (~10% more CPU for the same rows)
    con = duckdb.connect(config={"threads": 1})
    try:
        con.register("panel", table)
        result = con.sql(spec.sql).to_arrow_table()
    finally:
        con.close()
    missing = {"date", "security_id", "value"} - set(result.column_names)
    if missing:
        raise FeatureDefinitionError(
            f"SQL feature {spec.name} must return date, security_id, value"
        )
    frame: pd.DataFrame = from_long(result, panel, "value")
    return frame.to_numpy(dtype=np.float64)
