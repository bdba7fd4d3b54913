"""Research-stage benchmark → bench/results/research.json.

Full: all registered features on 3,000 securities x 10 years (2,520 days), the
ratio to a straightforward pandas (wide rolling / groupby) implementation of
the same features (measured on a subset, scaled honestly), and one LightGBM
retrain on the whole panel (~7.5M rows), and the point-in-time panel built from a
simulated lake vs one as-of query per session. ``--quick``: a small panel, < 30 s;
``--lake-only``: only the lake section.

    .venv/bin/python bench/research.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.lgbm import LGBModel
from pipelines.features import compute_feature, registry
from pipelines.pit.dataset import build_dataset
from pipelines.pit.labels import make_label
from pipelines.pit.panel import Panel
from pipelines.testing.panels import synthetic_panel

RESULTS = Path(__file__).resolve().parent / "results" / "research.json"


def _pandas_baseline(panel: Panel) -> dict[str, Callable[[], pd.DataFrame]]:
    """Naive pandas versions of a representative subset (long format, groupby-rolling)."""
    long = pd.DataFrame(
        {
            "security_id": np.tile(panel.securities.to_numpy(dtype=object), len(panel.dates)),
            "date": np.repeat(panel.dates.values, len(panel.securities)),
            "ret": panel.array("ret").ravel(),
            "adj_close": panel.array("adj_close").ravel(),
            "dollar_volume": panel.array("dollar_volume").ravel(),
            "sentiment": panel.array("sentiment").ravel(),
            "sector": panel.field("sector").to_numpy(dtype=object).ravel(),
            "book_to_price": (panel.array("book_equity") / panel.array("market_cap")).ravel(),
        }
    ).sort_values(["security_id", "date"])
    g = long.groupby("security_id", sort=False)
    return {
        "volatility_21d": lambda: g["ret"].rolling(21, min_periods=15).std(),
        "volatility_63d": lambda: g["ret"].rolling(63, min_periods=42).std(),
        "adv_21d": lambda: np.log(g["dollar_volume"].rolling(21, min_periods=15).mean()),
        "sentiment_5d": lambda: g["sentiment"].rolling(5, min_periods=3).mean(),
        "momentum_12_1": lambda: g["adj_close"].shift(21) / g["adj_close"].shift(252) - 1,
        "max_ret_21d": lambda: g["ret"].rolling(21, min_periods=15).max(),
        "book_to_price_sector_rel": lambda: (
            long["book_to_price"]
            - long.groupby(["date", "sector"])["book_to_price"].transform("median")
        ),
    }


def _lake_panel(quick: bool) -> dict[str, object]:
    """Point-in-time panel straight from a simulated lake vs one as-of query per day.

    Ours: :func:`pipelines.pit.lake_panel.build_panel` (one bitemporal DuckDB query,
    each row at its own knowledge cutoff, adjustments included). Baseline: per session,
    ``Lake.as_of`` of the five input tables at that session's cutoff (reads only — no
    adjustment, TTM or universe work), timed on a sample of sessions and scaled to all.
    """
    import datetime as dt
    import tempfile

    from pipelines.pit.lake_panel import build_panel
    from pipelines.testing.lakes import market_frames, simulated_lake
    from pipelines.timeline import decision_cutoff, sessions

    n_sec, years = (200, 2) if quick else (1000, 5)
    end = dt.date(2024, 12, 31)
    start = dt.date(end.year - years + 1, 1, 2)
    seed = 7  # MarketConfig's default seed
    frames = market_frames(n_sec, start, end, seed=seed)
    with tempfile.TemporaryDirectory() as root:
        lake = simulated_lake(root, universe=n_sec, start=start, end=end, seed=seed)
        panel_start = dt.date(start.year + 1, 1, 2)
        days = sessions(panel_start, end)
        build_panel(lake, days[-5], end)  # warm the calendar and DuckDB
        t0 = time.perf_counter()
        panel = build_panel(lake, panel_start, end)
        ours = time.perf_counter() - t0
        sample = days[:: max(len(days) // 8, 1)][:8]
        t0 = time.perf_counter()
        for day in sample:
            known = decision_cutoff(day)
            lake.as_of("prices", known_at=known, valid_at=day)
            lake.as_of("sentiment", known_at=known, valid_at=day)
            lake.as_of("security_master", known_at=known, valid_at=day)
            lake.as_of("corporate_actions", known_at=known, valid_at=(start, day))
            lake.as_of("fundamentals", known_at=known, valid_at=(day - dt.timedelta(400), day))
        per_day = (time.perf_counter() - t0) / len(sample)
    baseline = per_day * len(days)
    return {
        "securities": int(panel.shape[1]),
        "sessions": len(days),
        "silver_rows": {k: len(v) for k, v in frames.items()},
        "build_panel_s": round(ours, 2),
        "baseline_as_of_per_day_s": round(per_day, 3),
        "baseline_all_days_estimate_s": round(baseline, 1),
        "speedup": round(baseline / ours, 1),
        "note": "baseline = 5 Lake.as_of reads per session at its cutoff, no computation",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--lake-only",
        action="store_true",
        help="only (re)measure the lake panel section, keeping the other stored figures",
    )
    args = parser.parse_args()
    if args.lake_only:
        stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        stored["lake_panel"] = _lake_panel(args.quick)
        RESULTS.write_text(json.dumps(stored, indent=2, default=str))
        print(json.dumps(stored["lake_panel"], indent=2, default=str))
        return
    n_sec, n_days = (300, 400) if args.quick else (3000, 2520)
    out: dict[str, object] = {
        "mode": "quick" if args.quick else "full",
        "machine": {"python": platform.python_version(), "cpus": 2},
        "panel": {"securities": n_sec, "days": n_days},
    }
    t0 = time.perf_counter()
    panel = synthetic_panel(n_sec, n_days, seed=1, signal_strength=0.05)
    out["panel_build_s"] = round(time.perf_counter() - t0, 2)

    specs = registry()
    per_feature: dict[str, float] = {}
    features: dict[str, pd.DataFrame] = {}
    t0 = time.perf_counter()
    for name, spec in specs.items():
        t = time.perf_counter()
        features[name] = compute_feature(spec, panel)
        per_feature[name] = round(time.perf_counter() - t, 3)
    total = time.perf_counter() - t0
    out["features"] = {
        "count": len(specs),
        "total_s": round(total, 2),
        "target_s": 60,
        "per_feature_s": per_feature,
    }

    baseline = _pandas_baseline(panel)
    base_times: dict[str, float] = {}
    for name, fn in baseline.items():
        t = time.perf_counter()
        fn()
        base_times[name] = round(time.perf_counter() - t, 3)
    ours = sum(per_feature[n] for n in baseline)
    theirs = sum(base_times.values())
    out["pandas_baseline"] = {
        "note": (
            "baseline = naive pandas groupby(security).rolling / groupby(date, sector).median "
            "on a long frame, measured for the subset below only (long-frame construction "
            "excluded); speedup = baseline subset time / our time for the same subset. "
            "The estimate for all features scales our total by that ratio."
        ),
        "subset": base_times,
        "subset_ours_s": round(ours, 3),
        "subset_baseline_s": round(theirs, 3),
        "speedup_subset": round(theirs / ours, 2) if ours > 0 else None,
        "estimated_all_features_baseline_s": round(total * theirs / ours, 1) if ours > 0 else None,
    }

    t0 = time.perf_counter()
    names = list(features)
    label = make_label(panel, 5, "market")
    ds = build_dataset(panel, features, label)
    n_dates = len(panel.dates)
    valid_days = 63
    ds = ds.with_segments(
        train=(0, n_dates - valid_days - 7), valid=(n_dates - valid_days, n_dates - 5)
    )
    out["dataset_build_s"] = round(time.perf_counter() - t0, 2)
    rows = int(ds.rows("train", labelled=True)[0].size)
    t0 = time.perf_counter()
    model = LGBModel(num_boost_round=100 if args.quick else 200, early_stopping_rounds=20).fit(ds)
    out["lgbm_retrain"] = {
        "train_rows": rows,
        "features": len(names),
        "seconds": round(time.perf_counter() - t0, 2),
        "best_iteration": model.best_iteration,
        "target_s": 180,
        "params": model.full_params,
    }
    out["lake_panel"] = _lake_panel(args.quick)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2, default=str))
    print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
