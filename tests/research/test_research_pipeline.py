"""Labels, splits, walk-forward PIT, planted-signal detection, diagnostics and report."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from models.base import ModelSpec
from models.walk_forward import WalkForwardResult, run_walk_forward
from pipelines.features.registry import compute_features
from pipelines.pit.dataset import build_dataset
from pipelines.pit.labels import (
    forward_returns,
    label_available_date,
    make_label,
    make_labels,
)
from pipelines.pit.panel import Panel, to_long_frame
from pipelines.pit.splits import WalkForwardConfig, walk_forward_splits
from pipelines.research import diagnostics as dg
from pipelines.research.report import write_research_report
from pipelines.testing.lookahead import frames_equal, perturb_after
from pipelines.testing.panels import synthetic_panel

pytestmark = pytest.mark.unit

# sentiment carries the planted signal; the rest are decoys with no planted alpha
FEATURES = ["sentiment_5d", "sentiment_surprise", "reversal_5d", "book_to_price", "roe"]
CONFIG = WalkForwardConfig(
    horizon=5, retrain_every=21, min_train_days=120, valid_days=40, embargo=2
)
SMALL_MODEL = {"num_leaves": 7, "min_data_in_leaf": 50, "learning_rate": 0.1, "num_threads": 1}


@lru_cache(maxsize=4)
def panel(strength: float, seed: int = 3) -> Panel:
    return synthetic_panel(n_securities=150, n_days=520, seed=seed, signal_strength=strength)


def walk_forward(p: Panel, last_fit: int | None = None) -> WalkForwardResult:
    ds = build_dataset(p, compute_features(FEATURES, p), make_label(p, 5, "market"))
    splits = walk_forward_splits(len(p.dates), CONFIG)
    if last_fit is not None:  # only models fit at or before `last_fit` can score dates <= it
        splits = [s for s in splits if s.fit_position <= last_fit]
    spec = ModelSpec("lgbm", {**SMALL_MODEL, "num_boost_round": 100, "early_stopping_rounds": 10})
    return run_walk_forward(ds, splits, spec, keep_models=True)


@lru_cache(maxsize=4)
def wf(strength: float) -> WalkForwardResult:
    return walk_forward(panel(strength))


def test_label_definitions() -> None:
    p = panel(0.1)
    labels = make_labels(p)
    assert set(labels) == {
        f"fwd_ret_{h}d_{k}" for h in (5, 21) for k in ("raw", "market", "sector")
    }
    raw = labels["fwd_ret_5d_raw"].values
    adj = p.field("adj_close").where(p.field("in_universe"))
    np.testing.assert_allclose(raw.iloc[:-5], (p.field("adj_close").shift(-5) / adj - 1).iloc[:-5])
    assert raw.iloc[-5:].isna().all().all()
    # sector residuals average to 0 within each (date, sector) over the universe
    sec = labels["fwd_ret_5d_sector"].values
    long = pd.DataFrame(
        {
            "d": np.repeat(np.arange(len(p.dates)), len(p.securities)),
            "s": p.field("sector").to_numpy(dtype=object).ravel(),
            "y": sec.to_numpy().ravel(),
        }
    ).dropna()
    assert long.groupby(["d", "s"]).y.mean().abs().max() < 1e-12
    avail = label_available_date(p.dates, 5)
    assert avail.iloc[0] == p.dates[5] and avail.iloc[-5:].isna().all()
    usable = labels["fwd_ret_5d_raw"].usable_at(p.dates[100])
    assert usable.loc[: p.dates[95]].notna().any().any()
    assert usable.loc[p.dates[96] :].isna().all().all()


def test_labels_usable_at_d_are_point_in_time() -> None:
    p = panel(0.1)
    d = p.dates[300]
    q = perturb_after(p, d, seed=5)
    for kind in ("raw", "market", "sector"):
        a = make_label(p, 5, kind).usable_at(d)
        b = make_label(q, 5, kind).usable_at(d)
        assert frames_equal(a, b), kind


def test_splits_purge_embargo_and_validation() -> None:
    cfg = WalkForwardConfig(
        horizon=5, retrain_every=5, min_train_days=100, valid_days=20, embargo=3
    )
    splits = walk_forward_splits(400, cfg)
    assert splits and all(s.test[1] - s.test[0] <= 5 for s in splits)
    for s in splits:
        gap = cfg.horizon + cfg.embargo
        assert s.train[1] - 1 + gap <= s.valid[0]  # train labels end before validation starts
        assert s.valid[1] - 1 + gap <= s.test[0]  # every label used is known at the fit date
        assert s.train[1] - s.train[0] >= cfg.min_train_days
        assert s.train[0] == 0  # expanding
    tests = np.concatenate([s.positions("test") for s in splits])
    assert np.array_equal(tests, np.arange(splits[0].test[0], 400))  # contiguous, no overlap
    rolling = walk_forward_splits(400, WalkForwardConfig(train_days=120, min_train_days=100))
    assert all(s.train[1] - s.train[0] <= 120 for s in rolling)
    assert rolling[-1].train[0] > 0


def test_walk_forward_scores_are_point_in_time() -> None:
    p = panel(0.1)
    d = p.dates[330]
    base = wf(0.1).scores_wide().loc[:d]
    other = walk_forward(perturb_after(p, d, seed=9), last_fit=330).scores_wide().loc[:d]
    assert len(base) > 100
    assert frames_equal(base, other.reindex(columns=base.columns))


def _oos_rank_ic(result: WalkForwardResult, p: Panel) -> tuple[float, float]:
    fwd = pd.DataFrame(forward_returns(p, 5), index=p.dates, columns=p.securities)
    summary = dg.ic_summary(dg.ic_by_date(result.scores, fwd, 5, model_label="wf"))
    return float(summary["mean_rank_ic"].iloc[0]), float(summary["rank_ic_se"].iloc[0])


def test_planted_signal_is_found_and_null_is_not() -> None:
    mean, se = _oos_rank_ic(wf(0.1), panel(0.1))
    assert mean > 0.03 and mean > 4 * se
    mean0, se0 = _oos_rank_ic(wf(0.0), panel(0.0))
    assert abs(mean0) < 2 * se0, (mean0, se0)


def test_scores_carry_model_ids() -> None:
    res = wf(0.1)
    assert list(res.scores.columns) == ["date", "security_id", "score", "model_id"]
    assert set(res.scores["model_id"]) == {r.model_id for r in res.records}
    per_date = res.scores.groupby("date")["model_id"].nunique()
    assert (per_date == 1).all()


def test_diagnostics_and_report(tmp_path) -> None:
    p, res = panel(0.1), wf(0.1)
    fwd5 = pd.DataFrame(forward_returns(p, 5), index=p.dates, columns=p.securities)
    ic = dg.ic_by_date(res.scores, fwd5, 5)
    assert list(ic.columns) == ["date", "model_id", "horizon", "ic", "rank_ic", "n"]
    stats = dg.ic_summary(ic)
    assert {"mean_ic", "icir", "mean_rank_ic", "rank_icir", "rank_ic_se"} <= set(stats.columns)
    decay = dg.ic_decay(res.scores, p, model_label="wf")
    assert list(decay["horizon"]) == [1, 5, 10, 21]
    qret = dg.quantile_returns(res.scores, fwd5, 5, model_label="wf")
    assert list(qret.columns) == ["date", "model_id", "horizon", "quantile", "mean_return", "n"]
    qsum = dg.quantile_summary(qret)
    spread = qsum.set_index("quantile").loc["Q5-Q1", "mean_return"]
    assert spread > 0
    rec = res.records[-1]
    model = res.models[rec.model_id]
    ds = build_dataset(p, compute_features(FEATURES, p), make_label(p, 5, "market")).with_segments(
        test=(400, 420)
    )
    X, _, _ = ds.matrix("test", labelled=False)
    imp = dg.feature_importance(model, X, FEATURES, rec.model_id)
    assert list(imp.columns) == [
        "model_id",
        "feature",
        "gain",
        "split",
        "gain_share",
        "mean_abs_contrib",
    ]
    assert imp.iloc[0]["feature"].startswith("sentiment")
    out = write_research_report(
        tmp_path / "r.html", ic, stats, decay, qsum, imp, meta={"panel": "synthetic"}
    )
    page = out.read_text()
    assert page.count("data:image/png;base64,") == 4 and "<table" in page


def test_long_format_roundtrip() -> None:
    p = panel(0.1)
    long = to_long_frame(p.iloc(0, 3), ["close", "sector", "in_universe"])
    assert list(long.columns) == ["date", "security_id", "close", "sector", "in_universe"]
    assert len(long) == 3 * len(p.securities)
    assert long["close"].iloc[1] == pytest.approx(p.field("close").iloc[0, 1], nan_ok=True)
