"""The retrain worker process never outlives the run that made it: a run killed with
SIGKILL cannot shut its pool down, and an idle worker would wait on its queue forever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
CHILD = """
import os, sys, time
from pipelines.backtest.retrain import worker_pool
pool = worker_pool(1)
print(pool.submit(os.getpid).result(timeout=120), flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by init) counts as gone
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def test_a_worker_exits_when_its_run_is_killed() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    run = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True, env=env, cwd=REPO
    )
    assert run.stdout is not None
    worker = int(run.stdout.readline())
    assert worker != run.pid and _alive(worker)
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    deadline = time.monotonic() + 20
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(worker), f"worker {worker} outlived its killed run"


UNGUARDED = """
from pipelines.backtest.retrain import spawn_safe
print(spawn_safe())
"""


def test_a_script_without_a_main_guard_gets_no_worker(tmp_path: Path) -> None:
    """Spawn runs the main script again in the worker: an unguarded script would run its
    whole backtest twice. Such a script fits in its own process; a guarded one, -c and
    pytest itself may spawn."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    unguarded = tmp_path / "unguarded.py"
    unguarded.write_text(UNGUARDED)
    guarded = tmp_path / "guarded.py"
    guarded.write_text(UNGUARDED.replace("print(", 'if __name__ == "__main__":\n    print('))

    def run(*args: str) -> str:
        done = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env)
        return done.stdout.strip()

    assert run(str(unguarded)) == "False"
    assert run(str(guarded)) == "True"
    assert run("-c", UNGUARDED) == "True"
