"""Benchmark-relative figures and signal statistics of the backtest report agree with
their definitions on series whose answer is known (issue 16)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipelines.backtest.metrics import (
    benchmark_relative,
    sector_ic,
    signal_statistics,
    universe_benchmarks,
)

pytestmark = pytest.mark.unit

DAYS = pd.bdate_range("2024-01-02", periods=400)


def test_benchmark_relative_matches_the_definitions() -> None:
    rng = np.random.default_rng(1)
    b = pd.Series(rng.normal(0.0003, 0.01, len(DAYS)), index=DAYS)
    noise = pd.Series(rng.normal(0.0002, 0.005, len(DAYS)), index=DAYS)
    r = 1.5 * b + noise
    rel = benchmark_relative(r, b, "equal_weight")
    active = r - b
    assert rel.sessions == len(DAYS)
    assert rel.excess_return == pytest.approx(252 * active.mean(), rel=1e-12)
    assert rel.tracking_error == pytest.approx(active.std(ddof=1) * math.sqrt(252), rel=1e-12)
    assert rel.information_ratio == pytest.approx(rel.excess_return / rel.tracking_error)
    assert rel.beta == pytest.approx(1.5, abs=0.05)
    growth = float(np.prod(1 + b))
    assert rel.benchmark_cagr == pytest.approx(growth ** (252 / len(DAYS)) - 1, rel=1e-9)


def test_benchmark_relative_of_the_benchmark_itself() -> None:
    b = pd.Series(np.random.default_rng(2).normal(0, 0.01, 50), index=DAYS[:50])
    rel = benchmark_relative(b, b)
    assert rel.excess_return == 0 and rel.tracking_error == 0
    assert math.isnan(rel.information_ratio) and rel.beta == pytest.approx(1.0)


def test_universe_benchmarks_weight_by_yesterdays_cap() -> None:
    idx = DAYS[:3]
    ret = pd.DataFrame({"A": [0.0, 0.10, 0.02], "B": [0.0, -0.10, np.nan]}, index=idx)
    cap = pd.DataFrame({"A": [300.0, 330.0, 336.6], "B": [100.0, 90.0, np.nan]}, index=idx)
    bench = universe_benchmarks(ret, cap)
    assert bench["equal_weight"].iloc[1] == pytest.approx(0.0)
    assert bench["cap_weighted"].iloc[1] == pytest.approx((300 * 0.10 - 100 * 0.10) / 400)
    assert bench["equal_weight"].iloc[2] == pytest.approx(0.02)  # B not priced: left out
    assert bench["cap_weighted"].iloc[2] == pytest.approx(0.02)
    assert math.isnan(bench["cap_weighted"].iloc[0])  # no caps before the first session


def _panel(
    signal: float, seed: int, names: int = 200, days: int = 120
) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    idx, cols = DAYS[:days], [f"S{i:03d}" for i in range(names)]
    scores = pd.DataFrame(rng.normal(size=(days, names)), index=idx, columns=cols)
    noise = rng.normal(size=(days, names))
    forward = 0.01 * (signal * scores + math.sqrt(1 - signal**2) * noise)
    return scores, pd.DataFrame(forward, index=idx, columns=cols)


def test_a_planted_signal_shows_in_ic_icir_and_ordered_quantiles() -> None:
    scores, forward = _panel(0.1, seed=3)
    stats, quantiles = signal_statistics(scores, forward, quantiles=5)
    print(stats)
    assert stats.days == 120
    assert stats.ic_mean == pytest.approx(0.1, abs=0.02)
    assert stats.rank_ic_mean == pytest.approx(0.1, abs=0.02)
    assert stats.rank_ic_tstat > 10 and stats.ic_tstat > 10
    assert stats.icir_annual > 10
    final = quantiles.iloc[-1]
    assert list(final.index) == ["Q1", "Q2", "Q3", "Q4", "Q5"]
    assert final.is_monotonic_increasing and stats.quantile_spread > 0
    # Fresh random scores every session: consecutive rankings are unrelated.
    assert abs(stats.rank_autocorrelation) < 0.05


def test_no_signal_is_indistinguishable_from_zero_and_a_fixed_ranking_autocorrelates() -> None:
    scores, forward = _panel(0.0, seed=4)
    stats, _ = signal_statistics(scores, forward)
    assert abs(stats.rank_ic_tstat) < 3 and abs(stats.ic_tstat) < 3
    fixed = pd.DataFrame(
        np.tile(np.arange(50.0), (10, 1)), index=DAYS[:10], columns=[f"S{i}" for i in range(50)]
    )
    stats, _ = signal_statistics(fixed, fixed * 0.0 + 0.001)
    assert stats.rank_autocorrelation == pytest.approx(1.0)


def test_ic_by_sector_finds_a_signal_that_works_in_one_sector_only() -> None:
    """The scores predict the returns of Energy names only; every sector has 40 names; one
    name moves from Energy to Utilities half-way and counts in the sector it had then."""
    rng = np.random.default_rng(7)
    days, names = 150, 120
    idx, cols = DAYS[:days], [f"S{i:03d}" for i in range(names)]
    labels = np.array(["Energy", "Health Care", "Utilities"])[np.arange(names) % 3]
    sectors = pd.DataFrame(np.tile(labels, (days, 1)), index=idx, columns=cols)
    sectors.iloc[days // 2 :, 0] = "Utilities"  # S000 leaves Energy
    scores = pd.DataFrame(rng.normal(size=(days, names)), index=idx, columns=cols)
    noise = rng.normal(size=(days, names))
    energy = (sectors == "Energy").to_numpy()
    forward = 0.01 * np.where(energy, 0.3 * scores + math.sqrt(1 - 0.09) * noise, noise)
    forward_frame = pd.DataFrame(forward, index=idx, columns=cols)
    table = sector_ic(scores, forward_frame, sectors).set_index("sector")
    assert list(table.index) == ["Energy", "Health Care", "Utilities"]
    assert (table["sessions"] == days).all()
    mean = {str(k): float(v) for k, v in table["mean_rank_ic"].items()}
    tstat = {str(k): float(v) for k, v in table["rank_ic_tstat"].items()}
    assert mean["Energy"] == pytest.approx(0.3, abs=0.05)
    assert tstat["Energy"] > 10
    for other in ("Health Care", "Utilities"):
        assert abs(tstat[other]) < 3
    # Each (session, sector) IC is the Spearman correlation of that session's names.
    day = idx[-1]
    members = [c for c in cols if sectors.at[day, c] == "Utilities"]
    one = sector_ic(scores.loc[[day]], forward_frame.loc[[day]], sectors.loc[[day]])
    s_rank = pd.Series(scores.loc[day, members].to_numpy(float)).rank()
    f_rank = pd.Series(forward_frame.loc[day, members].to_numpy(float)).rank()
    expected = float(s_rank.corr(f_rank))
    got = dict(zip(one["sector"], one["mean_rank_ic"], strict=True))["Utilities"]
    assert got == pytest.approx(expected, abs=1e-12)
    # The whole-universe rank IC dilutes it: a third of the names carry the signal.
    stats, _ = signal_statistics(scores, forward_frame)
    assert stats.rank_ic_mean < mean["Energy"] / 2
    # Too few names in a sector on a session: no IC for it then.
    assert sector_ic(scores.iloc[:, :9], forward_frame.iloc[:, :9], sectors.iloc[:, :9]).empty
