"""Research history as known at each session: cost with and without price corrections
→ bench/results/pit-history.json.

A simulated lake (``--universe`` securities over two years) three ways: as published; with
sparse corrections (``--corrections`` random (security, day) closes re-published 1–5
sessions later); and with late folders (``--late`` whole sessions published one hour after
their cutoff). For each, the time to build the research history of the last ``--sessions``
sessions (:func:`pipelines.pit.history.load_history`), every shipped feature and the
5-day market label as each session knew them, and how many sessions were recomputed;
against the straightforward way: one lake read as of each session's cutoff
(``build_panel(..., view=cutoff)``) and the features of that session, measured on a
sample of sessions and scaled to all of them.

    .venv/bin/python bench/pit_history.py [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.features import compute_feature, registry
from pipelines.pit.history import load_history
from pipelines.pit.lake_panel import build_panel
from pipelines.research.stages import session_features
from pipelines.testing.lakes import simulated_lake
from pipelines.timeline import decision_cutoff, trading_calendar

RESULTS = Path(__file__).resolve().parent / "results" / "pit-history.json"
START, END = dt.date(2022, 1, 3), dt.date(2023, 12, 29)


def _corrections(count: int, seed: int):  # type: ignore[no-untyped-def]
    def plant(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        px = frames["prices"]
        rng = np.random.default_rng(seed)
        pick = px.iloc[rng.choice(len(px), size=count, replace=False)].copy()
        cal = trading_calendar()
        lags = rng.integers(1, 6, size=count)
        pick["close"] = pick["close"] * rng.choice([0.95, 1.05], size=count)
        pick["known_at"] = [
            pd.Timestamp(decision_cutoff(cal.offset(d.date(), int(k)))) - pd.Timedelta(hours=2)
            for d, k in zip(pd.to_datetime(pick["valid_date"]), lags, strict=True)
        ]
        frames["prices"] = pd.concat([px, pick], ignore_index=True)
        return frames

    return plant


def _late(sessions: list[dt.date]):  # type: ignore[no-untyped-def]
    def plant(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        px = frames["prices"].copy()
        for day in sessions:
            at = px["valid_date"] == pd.Timestamp(day)
            px.loc[at, "known_at"] = pd.Timestamp(decision_cutoff(day)) + pd.Timedelta(hours=1)
        frames["prices"] = px
        return frames

    return plant


def _measure(lake_root: Path, universe: int, n_sessions: int, sample: int, plant) -> dict:  # type: ignore[no-untyped-def]
    lake = simulated_lake(lake_root, universe=universe, start=START, end=END, perturb=plant)
    cal = trading_calendar()
    specs = dict(registry())
    lookback = max(s.lookback for s in specs.values())
    first = cal.back(END, n_sessions)[0]
    began = time.perf_counter()
    panel = build_panel(lake, first, END)
    first_print = time.perf_counter() - began

    began = time.perf_counter()
    history = load_history(lake, cal.back(first, lookback + 1)[0], END)
    loaded = time.perf_counter() - began
    began = time.perf_counter()
    feats = session_features(history, specs)
    label = history.label(5, "market")
    sessions_panel = history.session_panel()
    computed = time.perf_counter() - began
    recomputed = len(history.affected(lookback))

    # the straightforward way: a lake read as of each session's cutoff, then its features
    days = cal.sessions(first, END)
    picks = [days[i] for i in np.linspace(0, len(days) - 1, sample).astype(int)]
    began = time.perf_counter()
    for s in picks:
        view = build_panel(lake, cal.back(s, lookback + 1)[0], s, view=decision_cutoff(s))
        for spec in specs.values():
            compute_feature(spec, view, dates=[pd.Timestamp(s)])
    per_session = (time.perf_counter() - began) / sample
    del panel, feats, label, sessions_panel
    return {
        "sessions": len(days),
        "features": len(specs),
        "max_lookback": lookback,
        "first_print_panel_s": round(first_print, 2),
        "history_load_s": round(loaded, 2),
        "history_features_labels_s": round(computed, 2),
        "history_total_s": round(loaded + computed, 2),
        "sessions_recomputed": recomputed,
        "per_session_asof_s": round(per_session, 3),
        "per_session_asof_total_s_scaled": round(per_session * len(days), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--universe", type=int, default=300)
    parser.add_argument("--sessions", type=int, default=250)
    parser.add_argument("--corrections", type=int, default=50)
    parser.add_argument("--late", type=int, default=2)
    args = parser.parse_args()
    universe = 60 if args.quick else args.universe
    n_sessions = 60 if args.quick else args.sessions
    sample = 3 if args.quick else 8
    cal = trading_calendar()
    late_days = [cal.back(END, n_sessions // (k + 2))[0] for k in range(args.late)]
    out: dict[str, object] = {
        "machine": platform.platform(),
        "universe": universe,
        "n_corrections": args.corrections,
        "late_sessions": [str(d) for d in late_days],
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cases = {
            "no_corrections": None,
            "corrections": _corrections(args.corrections, seed=3),
            "late_folders": _late(late_days),
        }
        for name, plant in cases.items():
            out[name] = _measure(root / name, universe, n_sessions, sample, plant)
            print(name, json.dumps(out[name]), flush=True)
    if not args.quick:
        RESULTS.write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
