"""A real worker process is SIGKILLed after sending half the orders; the retry completes
the day without a duplicate (paper and FIX)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.execution import execute_day, load_orders
from pipelines.execution.records import read_day

from .conftest import NAV, PF, TRADE, CountingBroker, Venue

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_sigkill_after_half_then_retry(lake, tmp_path, venue: Venue, targets, limits, adv):
    marker = tmp_path / "half-sent"
    cmd = [
        sys.executable,
        "-m",
        "tests.execution.killable_worker",
        "--lake",
        str(tmp_path / "lake"),
        "--marker",
        str(marker),
        "--after",
        "3",
    ]
    if venue.acceptor is None:
        cmd += ["--paper", str(venue.engine.state_path)]
    else:
        # One FIX session, one process: the worker takes the session over.
        venue.broker.close()
        cmd += ["--fix-port", str(venue.acceptor.port), "--fix-dir", str(venue.make().data_dir)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, f"worker exited early ({proc.returncode})"
            assert time.monotonic() < deadline, "worker never sent half the orders"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert len(venue.at_venue()) == 3
    # The orders were committed before anything was sent; the acks died with the worker.
    assert len(load_orders(lake, PF, TRADE)) == 6
    assert read_day(lake, "order_events", TRADE, PF).empty

    broker = venue.restart() if venue.acceptor is not None else venue.broker
    counting = CountingBroker(broker)
    report = execute_day(lake, PF, TRADE, targets, counting, limits, nav=NAV, adv=adv)
    assert not report.generated
    assert len(counting.sent) == 3 and len(report.already_at_broker) == 3
    assert set(counting.sent).isdisjoint(report.already_at_broker)
    assert len(venue.at_venue()) == 6
    if venue.acceptor is not None:
        assert venue.acceptor.new_order_messages == 6  # nothing sent twice on the wire
    events = read_day(lake, "order_events", TRADE, PF)
    assert events["event_type"].eq("ack").sum() == 6
