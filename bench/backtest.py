"""Backtest benchmark: the planted signal on vs off over a longer window than the tests.

The same daily-loop stage functions as the DAGs, in process, with the paper broker, on a
simulated market written to a fresh lake. Records Sharpe (and its t-statistic), IC, costs,
turnover and seconds per session for signal strength > 0 and = 0 on the same seed, so
"the signal pays, no signal does not" is measured over months, not a dozen sessions.

    python bench/backtest.py [--universe 60] [--months 3] [--signal 0.1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import write_results


def _run(root: Path, universe: int, signal: float, start: dt.date, end: dt.date) -> dict[str, Any]:
    from pipelines.backtest import run_backtest
    from pipelines.daily.config import DailyConfig
    from pipelines.testing.lakes import simulated_lake

    lake = simulated_lake(
        root / "lake",
        universe=universe,
        start=start - dt.timedelta(days=150),  # lookback for the risk model and features
        end=end,
        signal=signal,
        seed=5,
    )
    config = DailyConfig(lookback_sessions=60, record_portfolio_tables=False)
    began = time.perf_counter()
    result = run_backtest(lake, start, end, config, write_report=False)
    seconds = time.perf_counter() - began
    metrics = result.metrics.to_dict()
    return {
        "signal_strength": signal,
        "seconds": round(seconds, 1),
        "seconds_per_session": round(seconds / max(result.metrics.sessions, 1), 2),
        "metrics": metrics,
        "result_hash": result.result_hash,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--universe", type=int, default=60)
    ap.add_argument("--signal", type=float, default=0.1)
    ap.add_argument("--end", default="2024-09-30")
    ap.add_argument("--months", type=int, default=3)
    args = ap.parse_args()
    end = dt.date.fromisoformat(args.end)
    start = end - dt.timedelta(days=round(30.5 * args.months))
    out: dict[str, Any] = {"params": vars(args), "load_average_1m": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        for label, signal in (("signal_on", args.signal), ("signal_off", 0.0)):
            out[label] = _run(Path(tmp) / label, args.universe, signal, start, end)
            m = out[label]["metrics"]
            print(
                f"{label}: sharpe {m['sharpe']:.2f} (t {m['sharpe_tstat']:.2f}), "
                f"IC {m['mean_ic']:.3f}, cost {m['total_cost']:.0f}, "
                f"{out[label]['seconds_per_session']} s/session"
            )
    on, off = out["signal_on"]["metrics"], out["signal_off"]["metrics"]
    out["ratio_seconds_per_session_off_over_on"] = round(
        out["signal_off"]["seconds_per_session"] / out["signal_on"]["seconds_per_session"], 3
    )
    out["signal_pays"] = bool(on["sharpe"] > 0 and on["sharpe_tstat"] > 2)
    out["no_signal_indistinguishable_from_zero"] = bool(abs(off["sharpe_tstat"]) < 2)
    print(f"wrote {write_results('backtest', out)}")


if __name__ == "__main__":
    main()
