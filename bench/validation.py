"""Data-contract validation benchmark: throughput on a 1M-row price batch, per-call overhead.

(a) rows/s validating a clean 1,000,000-row price batch against the prices contract;
(b) rows/s on the same batch with 0.1 % bad rows (negative close, high < low, volume < 0,
    unknown security id), including naming every failing row;
(c) the per-call fixed overhead: median wall time of a one-day (3,000-row) batch.

GX import, context creation and suite compilation happen once per process and are
reported separately (``warmup_s``), as a long-running worker pays them once.

Target on the 2-core reference machine: ≥ 200,000 rows/s for (a) and (b).

Run: ``python bench/validation.py [--quick]`` → ``bench/results/validation.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import median_time, timed, write_results
from pipelines.contracts import (
    Contract,
    ValidationContext,
    load_contract,
    parse_contract,
    validate_frame,
)
from pipelines.testing.contract_frames import price_frame, publish_time, security_ids

N_SECURITIES = 3000


def bench_contract() -> Contract:
    """The prices contract (as resolved on the contract search path), with the trade-date
    window widened to cover a year-long batch."""
    data = load_contract("prices").model_dump(mode="json")
    for rule in data["rules"]:
        if rule["name"] == "trade_date_recent":
            rule["max_age_days"] = 800
    return parse_contract(data, "prices.yaml (bench)")


def corrupt(frame: pd.DataFrame, frac: float, seed: int = 1) -> pd.DataFrame:
    """A copy of ``frame`` with ``frac`` of its rows broken, four fault kinds in turn."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    rows = rng.choice(len(out), size=int(len(out) * frac), replace=False)
    kinds = np.array_split(rows, 4)
    out.loc[kinds[0], "close"] = -1.0
    out.loc[kinds[1], "high"] = out.loc[kinds[1], "low"] - 1.0
    out.loc[kinds[2], "volume"] = -10.0
    out.loc[kinds[3], "security_id"] = [f"X{i:06d}" for i in range(len(kinds[3]))]
    return out


def context(day: dt.date, rows: int) -> ValidationContext:
    return ValidationContext(
        feed="sftp",
        logical_date=day,
        source_files=("prices.csv.gz",),
        previous_row_count=rows,
        known_security_ids=set(security_ids(N_SECURITIES)),
        expected_publish_time=publish_time(day),
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args(argv)
    repeat = 1 if args.quick else 3
    contract = bench_contract()

    n_days = 1_000_000 // N_SECURITIES + 1
    days = pd.bdate_range("2023-01-02", periods=n_days)
    big = price_frame(N_SECURITIES, days).iloc[:1_000_000].reset_index(drop=True)
    last = days[-1].date()
    big_ctx = context(last, len(big))
    bad = corrupt(big, 0.001)

    warmup_s, _ = timed(lambda: validate_frame(contract, big.iloc[:3000], big_ctx))

    clean = median_time(lambda: validate_frame(contract, big, big_ctx), repeat)
    clean_report = validate_frame(contract, big, big_ctx)
    dirty = median_time(lambda: validate_frame(contract, bad, big_ctx), repeat)
    dirty_report = validate_frame(contract, bad, big_ctx)

    day = days[0].date()
    one_day = price_frame(N_SECURITIES, [day])
    day_ctx = context(day, len(one_day))
    overhead = median_time(
        lambda: validate_frame(contract, one_day, day_ctx), 3 if args.quick else 7
    )

    payload: dict[str, Any] = {
        "target_rows_per_s": 200_000,
        "warmup_s": warmup_s,
        "clean_1m": {
            "rows": len(big),
            **clean,
            "rows_per_s": len(big) / clean["median_s"],
            "outcome": clean_report.outcome.value,
        },
        "bad_0_1pct_1m": {
            "rows": len(bad),
            **dirty,
            "rows_per_s": len(bad) / dirty["median_s"],
            "outcome": dirty_report.outcome.value,
            "failed_rules": dirty_report.failed_rules,
            "failed_rows": len(dirty_report.failed_row_indices()),
        },
        "one_day_3000_rows": {"rows": len(one_day), **overhead},
        "quick": args.quick,
    }
    path = write_results("validation", payload)
    print(
        f"clean 1M: {payload['clean_1m']['rows_per_s']:,.0f} rows/s; "
        f"0.1% bad: {payload['bad_0_1pct_1m']['rows_per_s']:,.0f} rows/s; "
        f"3,000-row call: {overhead['median_s'] * 1000:.0f} ms; warm-up {warmup_s:.1f} s → {path}"
    )
    return payload


if __name__ == "__main__":
    main()
