"""A backtest worker's :class:`~pipelines.research.carry.FitCarry`: a fit that reuses the
previous fit's features and normalised rows returns the model and scores of a fresh fit,
bit for bit, and recomputes whatever rows differ."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.backtest.retrain import ScannedInputs, fit_block, research_config, retrain_days
from pipelines.features.registry import compute_feature, registry
from pipelines.lake import Lake
from pipelines.pit.normalize import rank_gauss
from pipelines.pit.panel import Panel
from pipelines.research.carry import COLUMN_LOCAL, FitCarry
from pipelines.research.stages import fit_and_score
from pipelines.testing.lakes import simulated_lake
from pipelines.testing.panels import synthetic_panel
from pipelines.timeline import trading_calendar

pytestmark = pytest.mark.unit

RESEARCH = {
    "features": [
        "reversal_5d",
        "volatility_21d",
        "sentiment_5d",
        "book_to_price",
        "roe_sector_rel",
        "book_to_price_sector_rel",
    ],
    "train_sessions": 120,
    "min_train_sessions": 60,
    "valid_sessions": 20,
    "num_boost_round": 20,
    "early_stopping_rounds": 10,
    "params": {"num_leaves": 7, "min_data_in_leaf": 40, "learning_rate": 0.1, "num_threads": 1},
}


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("carry") / "lake"
    simulated_lake(root, universe=36, start=dt.date(2023, 6, 1), end=dt.date(2024, 6, 28), seed=5)
    return root


def test_carried_fits_equal_fresh_fits(lake: Path) -> None:
    config = research_config(RESEARCH)
    days = trading_calendar().sessions(dt.date(2024, 2, 1), dt.date(2024, 6, 28))
    starts = retrain_days(days, "monthly")
    scanned = ScannedInputs(Lake(str(lake)))
    kept = []
    for a, nxt in itertools.pairwise(starts):
        b = days[days.index(nxt) - 1]
        carried = fit_block(scanned, a, b, config)
        kept.append(dict(scanned.fit_carry.kept))
        fresh, scores = fit_and_score(Lake(str(lake)), a, b, config)
        assert carried.record is not None and carried.scores is not None
        assert carried.record.model_id == fresh.record.model_id
        pd.testing.assert_frame_equal(
            carried.scores.reset_index(drop=True),
            scores[["date", "security_id", "score", "model_id"]].reset_index(drop=True),
            check_exact=True,
        )
    # every fit after the first reused rows of its predecessor
    assert all(k["features"] > 0 and k["normalized"] > 0 for k in kept[1:])


def _panel(rng: np.random.Generator, dates: pd.DatetimeIndex, secs: list[str]) -> Panel:
    shape = (len(dates), len(secs))
    ret = rng.normal(0, 0.02, shape)
    frame = pd.DataFrame(ret, index=dates, columns=secs)
    return Panel(dates, pd.Index(secs), {"ret": frame})


def test_features_keep_only_rows_read_from_equal_rows() -> None:
    rng = np.random.default_rng(1)
    dates = pd.DatetimeIndex(pd.bdate_range("2024-01-01", periods=80))
    old = _panel(rng, dates[:60], ["a", "b", "c"])
    spec = registry()["volatility_21d"]
    carry = FitCarry()
    carry.features(old, {"volatility_21d": spec}, 25, compute_feature)
    # the new window: 10 sessions later, one more security (empty in the old rows) and a
    # revised return in row 40 of the old panel
    ret = old.fields["ret"].reindex(index=dates[10:], columns=["a", "b", "c", "d"])
    ret.iloc[50:, :] = rng.normal(0, 0.02, (len(ret) - 50, 4))
    ret.iloc[35:50, 3] = rng.normal(0, 0.02, 15)
    ret.iloc[30, 1] += 1e-9
    new = Panel(ret.index, ret.columns, {"ret": ret})
    got = carry.features(new, {"volatility_21d": spec}, 25, compute_feature)["volatility_21d"]
    want = compute_feature(spec, new.iloc(25 - spec.lookback, len(new.dates))).reindex(
        index=new.dates
    )
    want.iloc[:25] = np.nan
    np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())
    # rows 25..29 read no changed row and the new security only while it is empty
    assert carry.kept["features"] == 5


def test_normalized_rows_equal_a_fresh_rank_gauss_under_another_security_axis() -> None:
    rng = np.random.default_rng(2)
    dates = pd.DatetimeIndex(pd.bdate_range("2024-01-01", periods=35))
    x = rng.normal(size=(30, 6))
    x[rng.random(x.shape) < 0.2] = np.nan
    universe = rng.random(x.shape) < 0.8
    carry = FitCarry()

    def normalize(rows: np.ndarray) -> np.ndarray:
        return rank_gauss(rows, np.isfinite(rows))

    old_secs = pd.Index(list("abcdef"))
    masked = np.where(universe & np.isfinite(x), x, np.nan)
    carry.start_fit()
    carry.normalized("x", dates[:30], old_secs, "rank_gauss", masked, normalize)
    carry.end_fit()
    # a later window: five sessions on, security "c" dropped (empty after row 20 only),
    # a new security "g" (empty before row 25), one changed cell
    new_secs = pd.Index(list("abdefg"))
    y = np.full((30, 6), np.nan)
    y[:25, :5] = masked[5:, [0, 1, 3, 4, 5]]
    y[25:] = rng.normal(size=(5, 6))
    y[12, 2] += 0.5
    carry.start_fit()
    got = carry.normalized("x", dates[5:], new_secs, "rank_gauss", y, normalize)
    carry.end_fit()
    np.testing.assert_array_equal(got, rank_gauss(y, np.ones(y.shape, dtype=bool)))
    assert 0 < carry.kept["normalized"] < 30


def _with_empty_securities(panel: Panel, extra: list[str]) -> Panel:
    """``panel`` with ``extra`` securities interleaved into its axis, empty in every field."""
    secs = list(panel.securities)
    for i, name in enumerate(extra):
        secs.insert(1 + i * (len(secs) // (len(extra) + 1)), name)
    axis = pd.Index(secs, dtype=panel.securities.dtype)
    return Panel(panel.dates, axis, {k: v.reindex(columns=axis) for k, v in panel.fields.items()})


@pytest.mark.parametrize("name", sorted(COLUMN_LOCAL))
def test_column_local_features_ignore_empty_securities(name: str) -> None:
    """The hand-kept list :data:`COLUMN_LOCAL` is what lets a carry reuse rows across a
    changed security axis: every feature on it must give the same bits on the original
    securities when empty securities join the axis (and NaN on those). A feature rewritten
    to sum across securities fails here and must leave the list."""
    panel = synthetic_panel(n_securities=30, n_days=300, seed=3, signal_strength=0.1)
    spec = registry()[name]
    want = compute_feature(spec, panel)
    wider = _with_empty_securities(panel, ["ZZ_NEW1", "AA_NEW2", "MM_NEW3"])
    got = compute_feature(spec, Panel(wider.dates, wider.securities, wider.fields))
    np.testing.assert_array_equal(
        got[panel.securities].to_numpy(dtype=np.float64), want.to_numpy(dtype=np.float64)
    )
    assert got[["ZZ_NEW1", "AA_NEW2", "MM_NEW3"]].isna().all().all()


def test_column_local_names_are_registered_features() -> None:
    assert set(registry()) >= COLUMN_LOCAL
