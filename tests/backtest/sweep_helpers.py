"""The small sweep the end-to-end sweep tests run: eight variants on a small market."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml

_AXES: dict[str, list[float]] = {
    "policy.risk_aversion": [5, 20],
    "policy.cost_aversion": [0.5, 2.0],
    "alpha_ic": [0.02, 0.05],
}
#: Eight variants on a small market, five sessions each: minutes, not hours.
GRID: dict[str, Any] = {
    "name": "e2e",
    "start": "2024-05-24",
    "end": "2024-05-31",
    "config": {"lookback_sessions": 40, "record_portfolio_tables": False},
    "grid": _AXES,
}
#: Four of them: the embedded end-to-end test (the Celery one runs all eight).
SMALL_GRID = {**GRID, "grid": {k: v for k, v in _AXES.items() if k != "alpha_ic"}}
#: The simulated market (``simulated_lake`` keywords).
MARKET: dict[str, Any] = {
    "universe": 25,
    "start": dt.date(2024, 2, 1),
    "end": dt.date(2024, 6, 7),
    "signal": 0.3,
    "seed": 3,
}


def write_grid(folder: Path, grid: dict[str, object] | None = None) -> Path:
    """``folder/grid.yaml`` holding ``grid`` (default :data:`GRID`)."""
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump(GRID if grid is None else grid))
    return path
