"""The buffered backtest: the same numbers as writing through to the lake, bit for bit, and
a run killed mid-way resumes from its last flushed session to the same result."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc
import pytest

from pipelines.backtest import run_backtest
from pipelines.backtest.run import LOOP_TABLES
from pipelines.daily.config import DailyConfig
from pipelines.lake import Lake
from tests.daily.helpers import BACKTEST_CONFIG as CONFIG
from tests.daily.helpers import END as MARKET_END
from tests.daily.helpers import START as MARKET_START

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SPAN = (dt.date(2024, 5, 20), dt.date(2024, 5, 30))  # 8 sessions
REPO = Path(__file__).resolve().parents[2]

#: A backtest in a child process (killed mid-run by the tests): lake, first and last
#: session, and optionally the daily config as JSON (default: BACKTEST_CONFIG).
CHILD = """
import datetime as dt, sys
from pipelines.backtest import run_backtest
from pipelines.daily.config import DailyConfig
from pipelines.lake import Lake
from tests.daily.helpers import BACKTEST_CONFIG

def tick(done, total, day):
    print(done, flush=True)

config = DailyConfig.model_validate_json(sys.argv[4]) if len(sys.argv) > 4 else BACKTEST_CONFIG
run_backtest(Lake(sys.argv[1]), dt.date.fromisoformat(sys.argv[2]),
             dt.date.fromisoformat(sys.argv[3]), config, write_report=False,
             buffer_sessions=2, checkpoint_every=2, progress=tick)
print("finished", flush=True)
"""


def _lakes(make: Callable[..., Lake], root: Path) -> tuple[Lake, Lake]:
    """Two copies of one small market: a run in each starts from the same lake."""
    make(root / "a", universe=30, start=MARKET_START, end=MARKET_END, signal=0.3, seed=9)
    shutil.copytree(root / "a", root / "b")
    return Lake(str(root / "a")), Lake(str(root / "b"))


def test_buffered_and_unbuffered_runs_are_bit_identical(
    tmp_path: Path, make_simulated_lake: Callable[..., Lake]
) -> None:
    lake, other = _lakes(make_simulated_lake, tmp_path)
    direct = run_backtest(
        lake, *SPAN, CONFIG, write_report=False, buffer_sessions=0, checkpoint_every=3
    )
    buffered = run_backtest(
        other, *SPAN, CONFIG, write_report=False, buffer_sessions=3, checkpoint_every=3
    )
    assert direct.result_hash == buffered.result_hash
    pd.testing.assert_frame_equal(direct.daily, buffered.daily, check_exact=True)
    # Everything the stages wrote reached the lake: the same rows as writing through.
    assert direct.run_id == buffered.run_id
    # The flush interval changes the speed, never the numbers.
    other_k = run_backtest(
        lake, *SPAN, CONFIG, write_report=False, buffer_sessions=2, checkpoint_every=3
    )
    assert other_k.result_hash == direct.result_hash
    assert _rows(lake, direct.run_id) == _rows(other, buffered.run_id)


def _rows(lake: Lake, run_id: str) -> dict[str, int]:
    """Rows each loop table holds for ``run_id`` (every version, checkpoints included)."""
    flt = pc.field("portfolio_id") == run_id
    return {name: lake.dataset(name).to_table(filter=flt).num_rows for name in LOOP_TABLES}


def kill_after(
    root: Path, span: tuple[dt.date, dt.date], sessions: int, config: DailyConfig | None = None
) -> None:
    """Run the backtest of ``span`` on the lake at ``root`` in a child process (flush and
    checkpoint every 2 sessions) and SIGKILL it once ``sessions`` sessions are done."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    extra = [] if config is None else [config.model_dump_json()]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), *map(str, span), *extra],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert child.stdout is not None
    for line in child.stdout:  # sessions done; a flush after every second one
        if line.strip() == str(sessions):
            child.send_signal(signal.SIGKILL)
            break
    child.wait(timeout=300)
    assert child.returncode == -signal.SIGKILL


def test_a_killed_run_resumes_from_its_last_flush_to_the_same_result(
    tmp_path: Path, make_simulated_lake: Callable[..., Lake]
) -> None:
    lake, other = _lakes(make_simulated_lake, tmp_path)
    whole = run_backtest(
        other, *SPAN, CONFIG, write_report=False, buffer_sessions=2, checkpoint_every=2
    )
    kill_after(tmp_path / "a", SPAN, 5)
    # Resuming takes the run's checkpoint schedule (2), not the default.
    resumed = run_backtest(lake, *SPAN, CONFIG, write_report=False, buffer_sessions=2, resume=True)
    assert resumed.run_id == whole.run_id
    # Sessions 1-4 were flushed before the kill: only the rest ran again.
    assert resumed.resumed_after is not None and resumed.resumed_after >= dt.date(2024, 5, 23)
    assert resumed.result_hash == whole.result_hash
    pd.testing.assert_frame_equal(whole.daily, resumed.daily, check_exact=True)
    # Re-running the unflushed sessions duplicated nothing.
    assert _rows(lake, resumed.run_id) == _rows(other, whole.run_id)
    # A finished run is not resumed again: the next run is a new one.
    again = run_backtest(lake, *SPAN, CONFIG, write_report=False, buffer_sessions=2, resume=True)
    assert again.run_id.endswith("-r2") and again.resumed_after is None
