"""Helpers shared by the benchmarks: timing and writing JSON results."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall time of one call of ``fn`` and its result."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def median_time(fn: Callable[[], Any], repeat: int) -> dict[str, float]:
    """Median, min and max wall time over ``repeat`` calls."""
    times = [timed(fn)[0] for _ in range(repeat)]
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}


def cpu_model() -> str | None:
    """The CPU's model name (Linux), or None: runs on different models are not comparable
    in seconds, and NumPy's kernels (hence the last bits of results) differ between them."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def host_speed(repeat: int = 5) -> dict[str, float]:
    """CPU seconds of a fixed workload (best of ``repeat``): a Python loop of dict and float
    work, as in the stages' bookkeeping, and a NumPy sort, as in their array work.

    Recorded before and after a long run: hosts of one machine kind differ by up to ~50%, and
    one host's speed drifts by ~20% within an hour, with the code and its result unchanged.
    A run slower than the last with a slower calibration is the host, not the code; the
    calibration samples two instants, so a host that slows within the run can escape it."""
    import numpy as np

    def python_loop() -> float:
        book: dict[int, float] = {}
        for i in range(3_000_000):
            book[i % 997] = book.get(i % 997, 0.0) + i * 0.5
        return sum(book.values())

    values = np.random.default_rng(0).random(8_000_000)

    def numpy_sort() -> float:
        return float(np.sort(values)[1000])

    out = {}
    for name, fn in (("python_loop_cpu_s", python_loop), ("numpy_sort_cpu_s", numpy_sort)):
        best = math.inf
        for _ in range(repeat):
            began = time.process_time()
            fn()
            best = min(best, time.process_time() - began)
        out[name] = round(best, 4)
    return out


def meets_target(
    seconds: float, sessions: int, per_session: float, period_sessions: int, period: float
) -> bool:
    """Whether ``sessions`` measured in ``seconds`` meet both targets: ``per_session``
    seconds a session, and ``period`` seconds for the whole period of ``period_sessions``
    (projected at the measured rate when fewer sessions ran). Unrounded: over 2,516
    sessions, 0.24 s/session is 603.8 s, and a 601 s decade meets that rate but not 10
    minutes."""
    if sessions <= 0:
        return False
    rate = seconds / sessions
    return rate <= per_session and rate * period_sessions <= period


def write_results(name: str, payload: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` with machine facts attached."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpu_model": cpu_model(),
        },
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **payload,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path
