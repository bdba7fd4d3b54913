"""Research and the daily loop on what a price-only vendor delivers (issue 13).

The lake holds prices, the security master and corporate actions — no fundamentals, no
sentiment. Features needing the absent data are skipped with a one-line reason (logged,
stored, listed in the research report), the market-residual label falls back to an
equal-weighted market, retraining has a training segment, and the daily loop scores
(price-only builtin scorer), targets and reports.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.daily import stages as daily_stages
from pipelines.daily.scoring import BuiltinScores, PriceScores
from pipelines.features.availability import feature_tables, partition
from pipelines.features.registry import LIBRARY_PACKAGE, SQL_DIR, registry
from pipelines.features.spec import FeatureSpec
from pipelines.lake import Lake
from pipelines.lake.stage_state import StageState
from pipelines.pit.labels import make_label
from pipelines.pit.lake_panel import FIELD_TABLES, build_panel, empty_input_tables
from pipelines.pit.panel import Panel
from pipelines.pit.snapshot import MarketSnapshot
from pipelines.research import stages
from pipelines.research.report_lake import load_diagnostics, write_lake_report
from pipelines.research.stages import ResearchConfig, ResearchContext
from pipelines.testing.lakes import simulated_lake
from pipelines.timeline import decision_cutoff
from tests.daily.helpers import CONFIG, LOOP_DAYS, run_loop
from tests.daily.helpers import END as LOOP_END
from tests.daily.helpers import START as LOOP_START
from tests.research.lake_helpers import SMALL_CONFIG

pytestmark = pytest.mark.unit

PRICE_ONLY = ("fundamentals", "sentiment")
START, END = dt.date(2022, 1, 3), dt.date(2024, 6, 28)
D = dt.date(2024, 5, 29)
#: features computable from prices, the security master and corporate actions alone
PRICE_FEATURES = {
    "adv_21d",
    "amihud_21d",
    "max_ret_21d",
    "momentum_12_1",
    "momentum_12_1_sector_rel",
    "reversal_21d",
    "reversal_5d",
    "volatility_21d",
    "volatility_63d",
    "volatility_63d_sector_rel",
}


def shipped() -> dict[str, FeatureSpec]:
    """The shipped features (library and ``sql/features``), whatever a sandbox test added."""
    return {
        name: spec
        for name, spec in registry().items()
        if spec.source.startswith(f"{LIBRARY_PACKAGE}.") or Path(spec.source).parent == SQL_DIR
    }


def config() -> ResearchConfig:
    """The small test model over the shipped features."""
    return dataclasses.replace(SMALL_CONFIG, features=tuple(shipped()))


# --- pure bits ----------------------------------------------------------------------------


def _panel(caps: np.ndarray) -> Panel:
    """3 sessions x 3 securities, all in the universe, adjusted closes chosen by hand."""
    dates = pd.DatetimeIndex(["2024-01-02", "2024-01-03", "2024-01-04"])
    secs = pd.Index(["A", "B", "C"], dtype=object)
    adj = np.array([[10.0, 20.0, 40.0], [11.0, 19.0, 44.0], [12.0, 20.0, 40.0]])

    def frame(values: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(values, index=dates, columns=secs)

    return Panel(
        dates=dates,
        securities=secs,
        fields={
            "adj_close": frame(adj),
            "market_cap": frame(caps),
            "in_universe": frame(np.ones((3, 3), dtype=bool)),
        },
    )


def test_market_label_is_equal_weighted_without_caps() -> None:
    # forward 1-day returns at t0: A 11/10−1 = 0.1, B 19/20−1 = −0.05, C 44/40−1 = 0.1;
    # no cap anywhere → equal-weight market (0.1 − 0.05 + 0.1) / 3 = 0.05
    label = make_label(_panel(np.full((3, 3), np.nan)), 1, "market")
    np.testing.assert_allclose(label.values.iloc[0], [0.05, -0.10, 0.05], atol=1e-12)
    assert label.values.iloc[2].isna().all()  # t + 1 beyond the panel


def test_market_label_partial_caps_fall_back_per_date() -> None:
    caps = np.array(
        [
            [1.0, np.nan, 2.0],  # 2 of 3 names capped (≥ 50 %): cap-weighted over them
            [np.nan, np.nan, 5.0],  # 1 of 3 (< 50 %): equal weight that date
            [1.0, 1.0, 1.0],
        ]
    )
    label = make_label(_panel(caps), 1, "market")
    # t0: market = (1·0.1 + 2·0.1) / 3 = 0.1 (B, capless, weighs 0 but keeps its label)
    np.testing.assert_allclose(label.values.iloc[0], [0.0, -0.15, 0.0], atol=1e-12)
    # t1: fwd = [12/11 − 1, 20/19 − 1, 40/44 − 1] = [1/11, 1/19, −1/11]; mean = 1/57
    np.testing.assert_allclose(
        label.values.iloc[1], [1 / 11 - 1 / 57, 2 / 57, -1 / 11 - 1 / 57], atol=1e-12
    )


def test_market_label_with_full_caps_is_cap_weighted() -> None:
    caps = np.array([[1.0, 1.0, 2.0]] * 3)
    label = make_label(_panel(caps), 1, "market")
    # (0.1·1 − 0.05·1 + 0.1·2) / 4 = 0.0625
    np.testing.assert_allclose(label.values.iloc[0], [0.0375, -0.1125, 0.0375], atol=1e-12)


def test_every_feature_input_maps_to_lake_tables() -> None:
    specs = shipped()
    unmapped = {n: s.inputs for n, s in specs.items() if set(s.inputs) - set(FIELD_TABLES)}
    assert not unmapped
    assert feature_tables(specs["reversal_5d"]) == ("prices",)
    assert feature_tables(specs["book_to_price"]) == ("prices", "fundamentals")
    assert feature_tables(specs["sentiment_5d_sector_rel"]) == (
        "prices",
        "security_master",
        "sentiment",
    )
    price_only = {n for n, s in specs.items() if not set(feature_tables(s)) & set(PRICE_ONLY)}
    assert price_only == PRICE_FEATURES


def test_partition_says_why(caplog: pytest.LogCaptureFixture) -> None:
    specs = shipped()
    chosen = {n: specs[n] for n in ("reversal_5d", "roe", "sentiment_5d")}
    with caplog.at_level(logging.WARNING):
        kept, skipped = partition(chosen, {"fundamentals", "sentiment"})
    assert list(kept) == ["reversal_5d"]
    reasons = {s.feature: s.reason for s in skipped}
    assert reasons == {
        "roe": "input table fundamentals empty (needed for net_income, book_equity)",
        "sentiment_5d": "input table sentiment empty (needed for sentiment)",
    }
    logged = [r.getMessage() for r in caplog.records]
    assert logged == [
        "feature roe skipped: input table fundamentals empty (needed for net_income, book_equity)",
        "feature sentiment_5d skipped: input table sentiment empty (needed for sentiment)",
    ]


def _snapshot(returns: np.ndarray) -> MarketSnapshot:
    """A snapshot of three listed securities with the given daily total returns."""
    day = dt.date(2024, 2, 13)
    dates = pd.DatetimeIndex(pd.bdate_range(end=day, periods=len(returns)))
    secs = ["A", "B", "C"]
    ret = pd.DataFrame(returns, index=dates, columns=secs)
    close = 10.0 * (1.0 + ret.fillna(0.0)).cumprod()
    return MarketSnapshot(
        day=day,
        known_at=decision_cutoff(day),
        close=close,
        volume=close * 0 + 1e6,
        returns=ret,
        sectors=pd.Series(["10", "10", "20"], index=secs, dtype=object),
        shares=pd.Series(dtype=float),
        book_equity=pd.Series(dtype=float),
        sentiment=pd.DataFrame(index=dates[-1:], columns=secs, dtype=float),
    )


def test_price_scorer_by_hand() -> None:
    r = np.zeros((30, 3))
    r[0] = np.nan  # no previous close
    r[-5:, 0] = 0.01  # A rose 1 % a day over the last week
    r[-5:, 1] = -0.01  # B fell 1 % a day
    r[1:9, 2] = 0.02  # C rose 2 % a day, more than a month ago
    snap = _snapshot(r)
    parts = PriceScores(momentum_window=30, min_momentum_sessions=5).components(snap.day, snap)
    # reversal = −(total return of the last 5 sessions); momentum = rows [0, 9) (8 observed)
    np.testing.assert_allclose(parts["reversal"], [-(1.01**5 - 1), 1 - 0.99**5, 0.0], atol=1e-12)
    np.testing.assert_allclose(parts["momentum"], [0.0, 0.0, 1.02**8 - 1], atol=1e-12)
    # the default needs 21 observed momentum returns: here only reversal scores
    # (the builtin scorers read only the snapshot, not the store)
    scores = PriceScores().scores(None, snap.day, snap).set_index("security_id")["score"]
    rev = np.array([-(1.01**5 - 1), 1 - 0.99**5, 0.0])
    z = (rev - rev.mean()) / rev.std()
    np.testing.assert_allclose(scores.loc[["A", "B", "C"]], z, atol=1e-9)
    # no sentiment in the lake: the builtin scorer is the price scorer
    builtin = BuiltinScores().scores(None, snap.day, snap)
    assert set(builtin["model_id"]) == {PriceScores().model_id}


# --- a price-only lake --------------------------------------------------------------------


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    root = tmp_path_factory.mktemp("price_only")
    return simulated_lake(root / "lake", universe=60, start=START, end=END, omit=PRICE_ONLY)


@pytest.mark.slow
def test_absent_tables_are_empty_point_in_time(lake: Lake) -> None:
    # the field → table map covers exactly what the lake panel builds
    assert set(build_panel(lake, D, D).fields) == set(FIELD_TABLES)
    assert empty_input_tables(lake) == frozenset(PRICE_ONLY)
    # before the first price was published, prices count as empty too
    assert "prices" in empty_input_tables(lake, decision_cutoff(START) - dt.timedelta(days=1))


@pytest.mark.slow
def test_features_needing_absent_data_are_skipped_and_reported(
    lake: Lake, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = ResearchContext(lake, D, config())
    with caplog.at_level(logging.WARNING, logger="pipelines.features.availability"):
        frame = stages.compute_features(ctx)
    assert set(frame["feature"]) == PRICE_FEATURES
    lines = {r.getMessage() for r in caplog.records}
    assert (
        "feature book_to_price skipped: input table fundamentals empty "
        "(needed for book_equity, market_cap)"
    ) in lines
    assert "feature sentiment_5d skipped: input table sentiment empty (needed for sentiment)" in (
        lines
    )
    # what the DAG's mapped task for one skipped feature calls: no error, no rows
    assert len(stages.compute_features(ctx.with_features(["sentiment_surprise"]))) == 0

    skipped = load_diagnostics(lake).skipped
    expected = set(shipped()) - PRICE_FEATURES
    assert set(skipped["feature"]) == expected
    row = skipped.set_index("feature").loc["roe"]
    assert row["reason"] == "input table fundamentals empty (needed for net_income, book_equity)"
    assert row["last_date"] == D
    html = write_lake_report(lake, tmp_path / "research.html").read_text()
    assert "Skipped features" in html
    assert "input table sentiment empty (needed for sentiment)" in html


@pytest.mark.slow
def test_a_feature_with_inputs_all_null_in_its_window_is_skipped(lake: Lake) -> None:
    # the table has rows, but none inside the window the feature reads
    panel = build_panel(lake, dt.date(2024, 5, 1), D)
    blank = panel.replace_fields(volume=panel.field("volume") * np.nan)
    spec = FeatureSpec(
        name="volume_only",
        inputs=("volume",),
        lookback=3,
        kind="python",
        source="test",
        func=lambda p: p.array("volume"),
    )
    kept, skipped = partition({"volume_only": spec}, panel=blank, at=len(blank.dates) - 1)
    assert not kept
    assert skipped[0].reason.startswith("input volume all null in the panel window 2024-05-")


@pytest.mark.slow
def test_labels_are_not_empty(lake: Lake) -> None:
    frame = stages.compute_labels(ResearchContext(lake, D, config()))
    counts = frame.groupby("label").size()
    assert counts.get("fwd_ret_5d_market", 0) > 40, counts
    assert counts.get("fwd_ret_21d_market", 0) > 40, counts


@pytest.mark.slow
def test_retrain_and_score_on_prices_only(lake: Lake) -> None:
    ctx = ResearchContext(lake, D, config())
    result = stages.retrain(ctx)
    assert result.promoted and result.reason == "no champion"
    assert set(result.record.features) <= PRICE_FEATURES
    assert len(result.record.features) == len(PRICE_FEATURES)
    assert np.isfinite(result.challenger_metric)
    # the champion scores from the next session on, with the features it was trained on
    nxt = ResearchContext(lake, dt.date(2024, 5, 30), config())
    scores = stages.score_day(nxt)
    assert len(scores) > 40 and scores["score"].notna().all()
    assert set(scores["model_id"]) == {result.record.model_id}
    # the retrain's skips are recorded under its model id
    diag = lake.as_of(
        "research_diagnostics", known_at=ctx.now(), valid_at=D, columns=["model_id", "kind"]
    ).to_pandas()
    mine = diag[(diag["kind"] == "skipped_feature") & (diag["model_id"] == result.record.model_id)]
    assert len(mine) == len(shipped()) - len(PRICE_FEATURES)


@pytest.mark.slow
def test_walk_forward_skips_and_trains(lake: Lake) -> None:
    small = dataclasses.replace(config(), retrain_every=63)
    wf = stages.walk_forward_on_lake(lake, dt.date(2023, 1, 3), END, small)
    assert {s.feature for s in wf.skipped} == set(shipped()) - PRICE_FEATURES
    assert set(wf.dataset.feature_names) == PRICE_FEATURES
    assert len(wf.result.scores) > 0


@pytest.mark.slow
def test_the_daily_loop_scores_targets_and_reports(tmp_path: Path) -> None:
    root = tmp_path / "loop"
    simulated_lake(
        root / "lake", universe=60, start=LOOP_START, end=LOOP_END, signal=0.3, omit=PRICE_ONLY
    )
    results = run_loop(root)
    lake = Lake(str(root / "lake"))
    for result in results:
        research = result.outputs["research"]
        assert research["model_ids"] == [PriceScores().model_id]
        assert research["securities"] > 40
        state = StageState(lake, CONFIG.portfolio_id, result.day)
        assert state.get("scores")["score"].notna().all()
        targets = state.get("targets")
        assert targets.optimization.status == "optimal"
        assert (targets.positions["target_shares"] != 0).sum() > 10
        assert Path(result.outputs["report"]).is_file()
    assert [r.day for r in results] == list(LOOP_DAYS)


def test_score_source_names() -> None:
    assert isinstance(
        daily_stages.score_source(CONFIG.model_copy(update={"scorer": "price"})), PriceScores
    )


@pytest.mark.e2e
@pytest.mark.slow
def test_daily_research_dag_succeeds_with_skipped_features(
    tmp_path: Path, make_simulated_lake: Callable[..., Lake]
) -> None:
    from pipelines.config import get_settings
    from pipelines.orchestration.airflow_env import airflow_environment, run_dag_test

    root = get_settings().lake_root
    session = dt.date(2020, 11, 2)
    lake = make_simulated_lake(
        Path(root),
        universe=40,
        start=dt.date(2019, 9, 3),
        end=dt.date(2020, 11, 30),
        omit=PRICE_ONLY,
    )
    result = run_dag_test(
        "daily_research",
        dt.date(2024, 6, 3),
        conf={"session": session.isoformat()},
        env=airflow_environment(vendor_state_dir=tmp_path / "no-vendor"),
        extra_env={"ALPHAFACTORY_LAKE_ROOT": root},
    )
    assert result.ok, result.output[-5000:]
    mapped = {k: v for k, v in result.task_states.items() if k.startswith("compute_feature[")}
    assert len(mapped) == len(registry()), result.output[-3000:]
    assert set(mapped.values()) == {"success"}  # a skipped feature's task succeeds
    assert "feature roe skipped: input table fundamentals empty" in result.output
    assert set(stages.stored_features(lake, session)["feature"]) == PRICE_FEATURES
    skipped = load_diagnostics(lake).skipped
    assert set(skipped["feature"]) == set(shipped()) - PRICE_FEATURES
