"""A small simulated market in a lake, and a few sessions of the daily loop on it.

The lake comes from the one simulated-lake factory,
:func:`pipelines.testing.lakes.simulated_lake`. Built once per test session (under pytest's session temp dir, behind a file lock so
xdist workers share it) and copied by tests that write to it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import shutil
from pathlib import Path

from pipelines.daily.config import DailyConfig
from pipelines.daily.loop import DayResult, run_day
from pipelines.daily.stages import paper_broker
from pipelines.lake import Lake
from pipelines.testing.lakes import simulated_lake
from pipelines.timeline import decision_cutoff

#: The simulated market's sessions (the loop and the backtests run inside them).
START, END = dt.date(2024, 1, 2), dt.date(2024, 6, 28)
LOOP_DAYS = (dt.date(2024, 6, 3), dt.date(2024, 6, 4), dt.date(2024, 6, 5))
CONFIG = DailyConfig(lookback_sessions=60)
#: Backtests skip the per-day risk and target tables (speed); the loop tests keep them.
BACKTEST_CONFIG = CONFIG.model_copy(update={"record_portfolio_tables": False})


def run_loop(root: Path, days: tuple[dt.date, ...] = LOOP_DAYS) -> list[DayResult]:
    """The daily loop (file-backed paper broker, as the DAG uses) for ``days``."""
    lake = Lake(str(root / "lake"))
    broker = paper_broker(lake, CONFIG)
    out = []
    for day in days:
        broker.prices.known_at = decision_cutoff(day)  # type: ignore[attr-defined]
        out.append(run_day(lake, day, CONFIG, broker))
    return out


def shared_loop_root(base: Path) -> Path:
    """``base/daily-loop``: the market plus ``LOOP_DAYS`` of the loop, built once."""
    root = base / "daily-loop"
    with open(base / "daily-loop.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "done").is_file():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            simulated_lake(root / "lake", universe=60, start=START, end=END, signal=0.3, seed=11)
            run_loop(root)
            (root / "done").write_text("ok")
    return root


def copy_root(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("done", "*.lock"))
    return dst


__all__ = ["CONFIG", "END", "LOOP_DAYS", "START", "copy_root", "run_loop"]
