"""Lake benchmark: as-of snapshot latency and write throughput vs plain Parquet.

(a) median latency of an as-of snapshot (all securities, one valid date) on an
    N-security × Y-year daily price table with ~5% restated rows;
(b) lake write throughput as a ratio to ``pyarrow.parquet.write_table`` of the same rows,
    in the same run (ratio = parquet time / lake time; 1.0 = as fast as plain Parquet).

Targets on the 2-core reference machine: snapshot ≤ 150 ms median; write ratio ≥ 0.5.

Run: ``make bench`` or ``python bench/lake.py [--quick]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import shutil
import sys
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import median_time, timed, write_results
from pipelines.lake import Lake
from pipelines.lake.maintenance import maintain_table


def year_batch(
    year: int, ids: np.ndarray, rng: np.random.Generator
) -> tuple[pa.Table, list[dt.date]]:
    """One year of business-day prices for every security, published each evening."""
    days = pd.bdate_range(f"{year}-01-01", f"{year}-12-31")
    n_days, n_ids = len(days), len(ids)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (n_days, n_ids)), axis=0))
    dates = np.repeat(days.values.astype("datetime64[D]"), n_ids)
    known = np.repeat((days + pd.Timedelta(hours=22)).tz_localize("UTC").values, n_ids)
    flat = close.ravel()
    table = pa.table(
        {
            "security_id": pa.array(np.tile(ids, n_days)),
            "ticker": pa.array(np.tile(ids, n_days)),
            "open": flat * 0.99,
            "high": flat * 1.01,
            "low": flat * 0.98,
            "close": flat,
            "volume": rng.integers(1_000, 1_000_000, flat.size).astype("float64"),
            "currency": pa.array(["USD"] * flat.size),
            "valid_date": pa.array(dates, pa.date32()),
            "known_at": pa.array(known, pa.timestamp("us", tz="UTC")),
        }
    )
    return table, [d.date() for d in days]


def restatements(table: pa.Table, frac: float, rng: np.random.Generator) -> pa.Table:
    """A random ``frac`` of rows re-sent with a corrected close two days later."""
    take = np.sort(rng.choice(table.num_rows, int(table.num_rows * frac), replace=False))
    sub = table.take(pa.array(take))
    later = pa.array(
        sub.column("known_at").to_numpy() + np.timedelta64(2, "D"), pa.timestamp("us", tz="UTC")
    )
    close = sub.column("close").to_numpy() * 1.001
    sub = sub.set_column(sub.schema.get_field_index("close"), "close", pa.array(close))
    return sub.set_column(sub.schema.get_field_index("known_at"), "known_at", later)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--securities", type=int, default=3000)
    parser.add_argument("--years", type=int, default=20)
    parser.add_argument("--restated", type=float, default=0.05)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="300 securities × 3 years")
    args = parser.parse_args()
    if args.quick:
        args.securities, args.years, args.repeat = 300, 3, 10

    rng = np.random.default_rng(42)
    ids = np.array([f"S{i:06d}" for i in range(args.securities)])
    work = Path(tempfile.mkdtemp(prefix="bench-lake-"))
    lake = Lake(str(work / "lake"))
    lake_s = parquet_s = 0.0
    rows = 0
    all_days: list[dt.date] = []
    first_year = 2025 - args.years
    try:
        for i, year in enumerate(range(first_year, 2025)):
            batch, days = year_batch(year, ids, rng)
            restated = restatements(batch, args.restated, rng)
            all_days += days
            for j, part in enumerate((batch, restated)):
                rows += part.num_rows
                t_lake, _ = timed(partial(lake.write, "prices", part))
                t_pq, _ = timed(partial(pq.write_table, part, work / f"plain-{i}-{j}.parquet"))
                lake_s += t_lake
                parquet_s += t_pq
            print(f"{year}: {rows:,} rows written", flush=True)

        known = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
        probe = random.Random(7)
        picks = [probe.choice(all_days) for _ in range(args.repeat)]
        it = iter(picks * 2)
        snapshot = lake.as_of("prices", known_at=known, valid_at=picks[0])
        before = median_time(
            lambda: lake.as_of("prices", known_at=known, valid_at=next(it)), args.repeat
        )

        t_maint, _ = timed(lambda: maintain_table(lake, "prices"))
        it = iter(picks * 2)
        after = median_time(
            lambda: lake.as_of("prices", known_at=known, valid_at=next(it)), args.repeat
        )
        cold = median_time(
            lambda: Lake(str(work / "lake")).as_of("prices", known_at=known, valid_at=picks[0]), 5
        )
        status = lake.status("prices")
        ratio = parquet_s / lake_s
        result = {
            "params": vars(args),
            "rows": rows,
            "snapshot_rows": snapshot.num_rows,
            "snapshot_latency_before_maintenance": before,
            "snapshot_latency_after_maintenance": after,
            "snapshot_latency_cold_open": cold,
            "maintenance_s": t_maint,
            "files_after_maintenance": status.files,
            "write": {
                "lake_s": lake_s,
                "parquet_s": parquet_s,
                "lake_rows_per_s": rows / lake_s,
                "parquet_rows_per_s": rows / parquet_s,
                "ratio_parquet_time_over_lake_time": ratio,
            },
            "targets": {
                "snapshot_median_ms_max": 150,
                "write_ratio_min": 0.5,
                "snapshot_ok": after["median_s"] * 1000 <= 150 and before["median_s"] * 1000 <= 150,
                "write_ok": ratio >= 0.5,
            },
        }
        path = write_results("lake" if not args.quick else "lake-quick", result)
        print(
            f"snapshot median {before['median_s'] * 1000:.1f} ms (after maintenance "
            f"{after['median_s'] * 1000:.1f} ms, cold {cold['median_s'] * 1000:.1f} ms); "
            f"write ratio {ratio:.2f} → {path}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
