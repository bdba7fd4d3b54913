"""Ingestion benchmark: backfill history from the simulator's SFTP server; validation rows/s.

(a) **Backfill**: 10 years × 3,000 securities of the file-drop feeds (security master,
    corporate actions, prices) downloaded from the vendor simulator's SFTP server (a
    separate process on loopback, so it does not share our interpreter lock) through
    Airflow's ``SFTPHook`` by :func:`pipelines.ingest.runtime.backfill`, checksum-verified,
    landed in the raw zone, parsed, validated against the data contracts (Great
    Expectations) and written to bitemporal silver tables. Target: ≤ 300 s.
    Timed from the call to the return, Great Expectations import included. Not timed: the
    simulator rendering its day folders (a pre-warmed on-disk cache, ``VendorSimulator
    (cache_dir=...)``, kept under ``var/bench`` between runs) and the server start-up.
    Reported per phase (fetch = time the loader waited for downloads, land, parse,
    validate, write), and against a **baseline** measured in the same run on the same
    files: gunzip + ``pyarrow.csv.read_csv`` + ``pq.write_table`` per file, no network, no
    validation, no lake (``baseline_s / backfill_s``, higher is better).
(b) **Validation throughput**: a clean 1,000,000-row price batch through
    :func:`pipelines.contracts.validate_frame` (as ``bench/validation.py``). Target ≥ 200k rows/s.
(c) REST fundamentals over HTTP for the same market (not part of the target), and a re-run
    of the last chunk of days (must add nothing).

Run: ``python bench/ingest.py [--quick]`` → ``bench/results/ingest.json``
(``--quick``: 200 securities × 1 year → ``ingest-quick.json``).
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import gzip
import io
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import median_time, timed, write_results
from pipelines.testing.backdate import HISTORY
from pipelines.vendors.clock import FrozenClock
from pipelines.vendors.config import MarketConfig, VendorConfig
from pipelines.vendors.simulator import VendorSimulator

END = dt.date(2025, 6, 30)
CLOCK = dt.datetime(2025, 7, 1, 12, tzinfo=dt.UTC)  # every day of history already published
STATE_ROOT = Path(__file__).resolve().parent.parent / "var" / "bench" / "ingest"
TARGET_BACKFILL_S = 300.0
TARGET_ROWS_PER_S = 200_000


def _render(args: tuple[MarketConfig, Path, list[dt.date]]) -> int:
    market, cache_dir, days = args
    sim = VendorSimulator(market, cache_dir=cache_dir)
    for day in days:
        sim.day_folder(day)
    return len(days)


def prewarm(market: MarketConfig, cache_dir: Path, processes: int = 2) -> dict[str, Any]:
    """Render every day folder into the simulator's disk cache (skipped when already there)."""
    sim = VendorSimulator(market, cache_dir=cache_dir)
    missing = [
        d for d in sim.sessions if not ((sim._day_dir(d) or Path("/")) / "manifest.json").is_file()
    ]
    started = time.perf_counter()
    if missing:
        parts = [(market, cache_dir, missing[i::processes]) for i in range(processes)]
        with ProcessPoolExecutor(processes, mp_context=mp.get_context("fork")) as pool:
            list(pool.map(_render, parts))
    return {
        "days": len(sim.sessions),
        "rendered_now": len(missing),
        "seconds": time.perf_counter() - started,
        "cache_dir": str(cache_dir),
    }


def _serve(market: MarketConfig, state_dir: Path, ports: Any, stop: Any) -> None:
    from pipelines.vendors.server import run_vendor

    cfg = VendorConfig(
        market=market,
        state_dir=state_dir,
        clock=FrozenClock(CLOCK),
        rate_limit=100_000,
        max_page_size=50_000,
    )
    with run_vendor(cfg) as ep:
        ports.put((ep.sftp_port, ep.http_port, ep.host_public_key))
        stop.wait()


class VendorProcess:
    """The simulator's SFTP + REST servers in a child process (their own core and GIL)."""

    def __init__(self, market: MarketConfig, state_dir: Path) -> None:
        ctx = mp.get_context("fork")
        self._ports: Any = ctx.Queue()
        self._stop = ctx.Event()
        self._proc = ctx.Process(
            target=_serve, args=(market, state_dir, self._ports, self._stop), daemon=True
        )

    def __enter__(self) -> tuple[int, int, str]:
        self._proc.start()
        ports: tuple[int, int, str] = self._ports.get(timeout=600)
        return ports

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._proc.join(timeout=30)
        if self._proc.is_alive():
            self._proc.terminate()


def point_airflow_at(sftp_port: int, http_port: int, host_key: str) -> None:
    """Set the ``AIRFLOW_CONN_*`` vendor connections for this process's hooks."""
    from pipelines.config import get_settings
    from pipelines.orchestration.airflow_env import airflow_environment

    os.environ["ALPHAFACTORY_VENDOR_SFTP_PORT"] = str(sftp_port)
    os.environ["ALPHAFACTORY_VENDOR_HTTP_PORT"] = str(http_port)
    get_settings.cache_clear()
    for key, value in airflow_environment(vendor_host_key=host_key).values.items():
        if key.startswith("AIRFLOW_CONN_"):
            os.environ[key] = value


def baseline(sim: VendorSimulator, feeds: list[Any], out_dir: Path) -> dict[str, Any]:
    """Plain pyarrow on the same files: gunzip, read_csv, write Parquet; no checks, no lake."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    rows = files = 0
    started = time.perf_counter()
    for day in sim.sessions:
        day_files = sim.day_files(day)
        for feed in feeds:
            table = pacsv.read_csv(io.BytesIO(gzip.decompress(day_files[feed.file])))
            pq.write_table(table, out_dir / f"{feed.name}-{day.isoformat()}.parquet")
            rows += table.num_rows
            files += 1
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": rows, "files": files, "rows_per_s": rows / seconds}


def run_backfill(
    market: MarketConfig, state_dir: Path, lake_root: Path, workers: int, chunk_days: int
) -> dict[str, Any]:
    """Serve the market, backfill its file-drop feeds over SFTP, then REST fundamentals."""
    from pipelines.ingest.backfill import PhaseTimer
    from pipelines.ingest.runtime import backfill
    from pipelines.ingest.sources import HttpHookSource, SFTPHookSource
    from pipelines.lake import Lake

    sim = VendorSimulator(market)
    days = sim.sessions
    sftp_feeds = ["vendor_security_master", "vendor_corporate_actions", "vendor_prices"]
    lake = Lake(str(lake_root))
    with VendorProcess(market, state_dir) as (sftp_port, http_port, host_key):
        point_airflow_at(sftp_port, http_port, host_key)
        timer = PhaseTimer()
        seconds, results = timed(
            lambda: backfill(
                lake,
                days,
                feed_names=sftp_feeds,
                source_factory=lambda: SFTPHookSource("sftp_vendor"),
                workers=workers,
                chunk_days=chunk_days,
                timer=timer,
                backdate=HISTORY,
            )
        )
        rerun_days = days[-min(len(days), chunk_days) :]
        rerun_s, rerun = timed(
            lambda: backfill(
                lake,
                rerun_days,
                feed_names=sftp_feeds,
                source_factory=lambda: SFTPHookSource("sftp_vendor"),
                workers=workers,
                chunk_days=chunk_days,
                backdate=HISTORY,
            )
        )
        rest_timer = PhaseTimer()
        rest_s, rest = timed(
            lambda: backfill(
                lake,
                days,
                feed_names=["vendor_fundamentals"],
                records=HttpHookSource("http_vendor"),
                timer=rest_timer,
                backdate=HISTORY,
            )
        )
    silver = {
        t: lake.table(t).to_pyarrow_dataset().count_rows()  # type: ignore[union-attr]
        for t in ("security_master", "corporate_actions", "prices", "fundamentals")
    }
    rows_loaded = sum(o.rows for outs in results.values() for o in outs)
    statuses = {f: dict(collections.Counter(o.status for o in outs)) for f, outs in results.items()}
    return {
        "sessions": len(days),
        "first_session": days[0],
        "last_session": days[-1],
        "seconds": seconds,
        "rows": rows_loaded,
        "rows_per_s": rows_loaded / seconds,
        "files": sum(len(outs) for outs in results.values()),
        "phases_s": {k: round(v, 2) for k, v in sorted(timer.seconds.items())},
        "statuses": statuses,
        "quarantined": sum(s.get("quarantined", 0) for s in statuses.values()),
        "silver_rows": silver,
        "rerun_last_chunk": {
            "sessions": len(rerun_days),
            "seconds": rerun_s,
            "statuses": dict(collections.Counter(o.status for v in rerun.values() for o in v)),
        },
        "rest_fundamentals": {
            "seconds": rest_s,
            "records": sum(o.rows for outs in rest.values() for o in outs),
            "statuses": dict(collections.Counter(o.status for v in rest.values() for o in v)),
        },
    }


def validation_throughput(repeat: int) -> dict[str, Any]:
    """Clean 1M-row price batch through ``validate_frame`` (see ``bench/validation.py``)."""
    import pandas as pd

    from bench.validation import N_SECURITIES, bench_contract, context
    from pipelines.contracts import validate_frame
    from pipelines.testing.contract_frames import price_frame

    contract = bench_contract()
    days = pd.bdate_range("2023-01-02", periods=1_000_000 // N_SECURITIES + 1)
    big = price_frame(N_SECURITIES, days).iloc[:1_000_000].reset_index(drop=True)
    ctx = context(days[-1].date(), len(big))
    warmup_s, _ = timed(lambda: validate_frame(contract, big.iloc[:3000], ctx))
    clean = median_time(lambda: validate_frame(contract, big, ctx), repeat)
    outcome = validate_frame(contract, big, ctx).outcome.value
    return {
        "rows": len(big),
        **clean,
        "rows_per_s": len(big) / clean["median_s"],
        "warmup_s": warmup_s,
        "outcome": outcome,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 securities × 1 year")
    parser.add_argument("--securities", type=int, default=None)
    parser.add_argument("--years", type=float, default=None)
    parser.add_argument("--workers", type=int, default=3, help="SFTP connections")
    parser.add_argument("--chunk-days", type=int, default=252, help="sessions per chunk")
    args = parser.parse_args(argv)
    securities = args.securities or (200 if args.quick else 3000)
    years = args.years or (1.0 if args.quick else 10.0)
    market = MarketConfig.from_history_years(END, years, universe_size=securities)
    state_dir = STATE_ROOT / f"vendor-{securities}x{years:g}y"

    load_before = os.getloadavg()
    warm = prewarm(market, state_dir / "cache")
    print(
        f"pre-warmed {warm['rendered_now']} of {warm['days']} day folders in {warm['seconds']:.0f}s"
    )
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        lake_root = Path(tmp) / "lake"
        backfill = run_backfill(market, state_dir, lake_root, args.workers, args.chunk_days)
        from pipelines.ingest.feed_spec import load_feeds
        from pipelines.ingest.runtime import ordered_feeds

        feeds = [f for f in ordered_feeds(load_feeds()) if f.protocol == "sftp"]
        base_dir = Path(tmp) / "baseline"
        base_dir.mkdir()
        base = baseline(VendorSimulator(market, cache_dir=state_dir / "cache"), feeds, base_dir)
        shutil.rmtree(base_dir)
    validation = validation_throughput(1 if args.quick else 3)

    payload: dict[str, Any] = {
        "params": {
            "securities": securities,
            "years": years,
            "end": END,
            "sftp_workers": args.workers,
            "chunk_days": args.chunk_days,
            "quick": args.quick,
        },
        "notes": (
            "Backfill of the SFTP feeds (security master, corporate actions, prices) through "
            "the simulator's SFTP server in a child process, Airflow SFTPHook client; timed "
            "section excludes the simulator's rendering (pre-warmed disk cache) and server "
            "start-up; includes GX import, raw landing, parsing, contract validation, silver "
            "writes, quarantine and ingest_runs records. REST fundamentals timed separately."
        ),
        "load_average_1m_before_after": [load_before[0], os.getloadavg()[0]],
        "prewarm": warm,
        "backfill": backfill,
        "baseline_pyarrow_csv_to_parquet": base,
        "ratio_baseline_s_over_backfill_s": base["seconds"] / backfill["seconds"],
        "validation_1m_clean": validation,
        "targets": {
            "backfill_s_max": TARGET_BACKFILL_S,
            "validation_rows_per_s_min": TARGET_ROWS_PER_S,
            "backfill_ok": backfill["seconds"] <= TARGET_BACKFILL_S,
            "validation_ok": validation["rows_per_s"] >= TARGET_ROWS_PER_S,
            "no_quarantine_on_clean_history": backfill["quarantined"] == 0,
        },
    }
    path = write_results("ingest-quick" if args.quick else "ingest", payload)
    print(
        f"backfill {securities}×{years:g}y: {backfill['seconds']:.1f}s "
        f"({backfill['rows_per_s']:,.0f} rows/s, phases {backfill['phases_s']}), "
        f"baseline {base['seconds']:.1f}s; validation {validation['rows_per_s']:,.0f} rows/s; "
        f"quarantined {backfill['quarantined']} → {path}"
    )
    return payload


if __name__ == "__main__":
    main()
