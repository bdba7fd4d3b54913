"""Walk-forward retrains inside the backtest (``DailyConfig.retrain``): the live retrain's
training code on the schedule, each session scored by the model current then and recorded;
point in time (data published after a retrain changes neither that model nor the scores
up to it), deterministic, and a killed run resumes to the same result hash."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import shutil
import signal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pipelines.backtest import run_backtest
from pipelines.backtest.report import write_analysed_report
from pipelines.backtest.retrain import (
    ScannedInputs,
    WalkForwardScores,
    _ascending_days,
    default_workers,
    fit_block,
    research_config,
    retrain_days,
)
from pipelines.backtest.run import config_hash
from pipelines.daily.stages import score_source
from pipelines.errors import ConfigurationError
from pipelines.lake import Lake
from pipelines.pit.lake_panel import load_late_facts, load_panel_rows, load_price_revisions
from pipelines.research import stages
from pipelines.testing.lakes import perturb_after, simulated_lake
from pipelines.timeline import ALL_DATES, LATEST, decision_cutoff, trading_calendar
from tests.backtest.test_buffered import kill_after
from tests.daily.helpers import BACKTEST_CONFIG

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MARKET = {"universe": 30, "start": dt.date(2023, 6, 1), "end": dt.date(2024, 6, 28)}
SPAN = (dt.date(2024, 5, 22), dt.date(2024, 6, 5))  # 10 sessions; retrains 5/22 and 6/3
JUNE = dt.date(2024, 6, 3)  # the first session of June: a retrain
#: A cheap model and a short walk-forward: the tests check behaviour, not model quality.
RESEARCH = {
    "features": ["reversal_5d", "volatility_21d", "sentiment_5d", "book_to_price", "roe"],
    "train_sessions": 120,
    "min_train_sessions": 60,
    "valid_sessions": 20,
    "num_boost_round": 30,
    "early_stopping_rounds": 10,
    "params": {"num_leaves": 7, "min_data_in_leaf": 40, "learning_rate": 0.1, "num_threads": 1},
}
CONFIG = BACKTEST_CONFIG.model_copy(update={"retrain": "monthly", "retrain_research": RESEARCH})


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("retrain") / "lake"
    simulated_lake(root, signal=0.3, seed=9, **MARKET)  # type: ignore[arg-type]
    return root


def _copy(market: Path, to: Path) -> Lake:
    shutil.copytree(market, to)
    return Lake(str(to))


def test_the_schedule_is_the_first_session_of_the_run_and_of_each_month() -> None:
    days = trading_calendar().sessions(dt.date(2024, 5, 22), dt.date(2024, 9, 5))
    assert retrain_days(days, "monthly") == [
        dt.date(2024, 5, 22),
        dt.date(2024, 6, 3),  # June 1st is a Saturday
        dt.date(2024, 7, 1),
        dt.date(2024, 8, 1),
        dt.date(2024, 9, 3),  # Labor Day
    ]
    weekly = retrain_days(days, "weekly")
    assert dt.date(2024, 5, 28) in weekly  # Memorial Day moves the week's retrain to Tuesday
    assert all(d.isocalendar()[:2] != p.isocalendar()[:2] for p, d in itertools.pairwise(weekly))
    with pytest.raises(ConfigurationError, match="unknown research config"):
        research_config({"trees": 3})
    assert research_config(RESEARCH).features == tuple(RESEARCH["features"])  # type: ignore[arg-type]
    # Runs without retrains keep their ids; a retrain schedule is another config.
    assert config_hash(BACKTEST_CONFIG, *SPAN) != config_hash(CONFIG, *SPAN)
    # The research overrides (a dict) leave the frozen config hashable, by content.
    assert hash(CONFIG) == hash(CONFIG.model_copy(deep=True)) != hash(BACKTEST_CONFIG)


def test_a_retraining_run_records_the_model_of_each_session_and_repeats_bit_for_bit(
    market: Path, tmp_path: Path
) -> None:
    lake = _copy(market, tmp_path / "lake")
    first = run_backtest(lake, *SPAN, CONFIG, write_report=False)
    ids = first.daily.set_index("date")["model_id"]
    assert [r.day for r in first.retrains] == [SPAN[0], JUNE]
    may, june = (r.model_id for r in first.retrains)
    assert may and june and may != june
    assert set(ids[ids.index < JUNE]) == {may} and set(ids[ids.index >= JUNE]) == {june}
    assert first.retrains[0].sessions == 7 and first.retrains[1].sessions == 3
    # The run's own namespace: nothing reaches the live model registry.
    assert lake.table("model_registry") is None
    stored = lake.as_of(
        "backtest_daily",
        known_at=LATEST,
        valid_at=ALL_DATES,
        filter=pc.field("run_id") == first.run_id,
    ).to_pandas()
    assert stored.sort_values("valid_date")["model_id"].tolist() == ids.tolist()
    # The report names the models, the retrains and the rank IC by sector.
    path, analysis = write_analysed_report(
        lake, first.run_id, CONFIG, first.daily, first.metrics, first.retrains
    )
    html = Path(path).read_text()
    assert "Walk-forward retrains" in html and may in html and june in html
    # 30 names over 11 sectors: only the sectors with 5 or more names get an IC
    assert "Rank IC by sector" in html and len(analysis.sectors) >= 1
    assert analysis.sectors["sessions"].between(1, len(first.daily)).all()
    # The book over time: every P&L of the book is in some trade, and the TCA's impact and
    # fees are the equity curve's costs.
    assert "Book over time" in html and "Monte Carlo of trade sequences" in html
    assert analysis.trades is not None and len(analysis.trades.trades)
    assert analysis.trades.coverage == pytest.approx(1.0, abs=1e-6)
    costs = analysis.costs
    assert (costs["impact"] + costs["fees"]).sum() == pytest.approx(first.daily["cost"].sum())
    assert analysis.exposures["gross"].dropna().between(0.0, 3.0).all()
    again = run_backtest(lake, *SPAN, CONFIG, write_report=False)
    assert again.run_id.endswith("-r2")
    assert [r.model_id for r in again.retrains] == [may, june]
    assert again.result_hash == first.result_hash
    pd.testing.assert_frame_equal(first.daily, again.daily, check_exact=True)


def _source(lake: Lake, days: list[dt.date], workers: int | None = None) -> WalkForwardScores:
    """The tests' monthly retrains over ``days`` (the cheap research config)."""
    return WalkForwardScores(
        lake,
        days,
        "monthly",
        research_config(RESEARCH),
        score_source(BACKTEST_CONFIG),
        workers=workers,
    )


def _scores(
    lake: Lake, days: list[dt.date], workers: int | None = None
) -> tuple[WalkForwardScores, dict[dt.date, pd.DataFrame]]:
    with _source(lake, days, workers) as source:
        return source, {d: source.scores(lake, d, None) for d in days}  # type: ignore[arg-type]


def test_a_worker_process_fits_what_this_process_would_and_a_dead_one_is_replaced(
    market: Path,
) -> None:
    """The retrains fit ahead in a worker process give the models and scores of fits in
    the run's own process, bit for bit; when the worker dies (SIGKILL, as an OOM kill
    would), the blocks it had not handed over are fit in the run's process, the same."""
    lake = Lake(str(market))
    days = trading_calendar().sessions(dt.date(2024, 4, 29), dt.date(2024, 6, 4))
    here, expected = _scores(lake, days, workers=0)
    assert [r.day for r in here.retrains] == [days[0], dt.date(2024, 5, 1), JUNE]
    assert not any(r.in_worker for r in here.retrains)
    with _source(lake, days, workers=1) as source:
        got = {days[0]: source.scores(lake, days[0], None)}  # type: ignore[arg-type]
        assert source.retrains[0].in_worker
        assert source._pool is not None
        for process in list(source._pool._processes.values()):  # the next fits are under way
            os.kill(process.pid, signal.SIGKILL)
        got |= {d: source.scores(lake, d, None) for d in days[1:]}  # type: ignore[arg-type]
    assert [r.model_id for r in source.retrains] == [r.model_id for r in here.retrains]
    assert not source.retrains[-1].in_worker and source.workers == 0
    for day in days:
        pd.testing.assert_frame_equal(got[day], expected[day], check_exact=True)


def test_prefetch_hands_the_worker_the_first_block_and_those_ahead_before_any_score(
    market: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run hands its first blocks to the worker before its first session (the worker's
    start-up overlaps the session's own work); the same blocks the first score would
    hand over, and nothing without a worker."""
    lake = Lake(str(market))
    days = trading_calendar().sessions(dt.date(2024, 4, 29), dt.date(2024, 6, 4))
    handed: list[tuple[dt.date, dt.date]] = []
    for workers in (0, 1):
        source = _source(lake, days, workers)
        monkeypatch.setattr(source, "_submit", handed.append)
        source.prefetch(dt.date(2024, 5, 2))
        assert handed == (
            [] if workers == 0 else [source.block_of(d) for d in source.retrain_at[1:]]
        )
    assert handed[0] == (dt.date(2024, 5, 1), dt.date(2024, 5, 31))


def test_the_default_is_one_worker_when_there_is_a_second_core_and_something_to_overlap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipelines.config import get_settings

    get_settings.cache_clear()
    monkeypatch.delenv("ALPHAFACTORY_BACKTEST_RETRAIN_WORKERS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert default_workers(2) == 1 and default_workers(1) == 0
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert default_workers(120) == 0
    monkeypatch.setenv("ALPHAFACTORY_BACKTEST_RETRAIN_WORKERS", "0")
    get_settings.cache_clear()
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert default_workers(120) == 0
    get_settings.cache_clear()


def test_a_retrain_without_enough_history_leaves_its_sessions_to_the_configs_scorer(
    market: Path,
) -> None:
    lake = Lake(str(market))
    days = trading_calendar().sessions(dt.date(2023, 8, 1), dt.date(2023, 8, 2))
    fixed = pd.DataFrame({"security_id": ["S1"], "score": [1.0], "model_id": ["fallback"]})

    class Fallback:
        def scores(self, store: object, day: dt.date, snapshot: object) -> pd.DataFrame:
            return fixed

    source = WalkForwardScores(lake, days, "monthly", research_config(RESEARCH), Fallback())
    for day in days:
        assert source.scores(lake, day, None) is fixed  # type: ignore[arg-type]
    assert len(source.retrains) == 1 and source.retrains[0].model_id is None
    assert "empty training segment" in str(source.retrains[0].error)


def test_a_retrain_and_the_scores_up_to_it_ignore_everything_published_after_it(
    market: Path, tmp_path: Path
) -> None:
    """Lake B rewrites every fact published after the June retrain's cutoff (and adds late
    corrections, a retroactive split and delisting): the model fit then and every score up
    to it are bit-identical to lake A's; later scores move."""
    a = Lake(str(market))
    b = simulated_lake(
        tmp_path / "b",
        signal=0.3,
        seed=9,
        perturb=lambda frames: perturb_after(frames, decision_cutoff(JUNE), seed=5),
        **MARKET,  # type: ignore[arg-type]
    )
    days = trading_calendar().sessions(dt.date(2024, 5, 29), dt.date(2024, 6, 7))
    source_a, scores_a = _scores(a, days)
    source_b, scores_b = _scores(b, days)
    assert [r.day for r in source_a.retrains] == [days[0], JUNE]
    assert [r.model_id for r in source_a.retrains] == [r.model_id for r in source_b.retrains]
    for day in days:
        if day <= JUNE:
            pd.testing.assert_frame_equal(scores_a[day], scores_b[day], check_exact=True)
    later = [d for d in days if d > JUNE]
    assert later and any(not scores_a[d].equals(scores_b[d]) for d in later)


def test_a_killed_retraining_run_resumes_to_the_same_result(market: Path, tmp_path: Path) -> None:
    whole = run_backtest(
        _copy(market, tmp_path / "whole"),
        *SPAN,
        CONFIG,
        write_report=False,
        buffer_sessions=2,
        checkpoint_every=2,
    )
    lake = _copy(market, tmp_path / "killed")
    kill_after(tmp_path / "killed", SPAN, 5, CONFIG)
    resumed = run_backtest(lake, *SPAN, CONFIG, write_report=False, buffer_sessions=2, resume=True)
    assert resumed.run_id == whole.run_id
    assert resumed.resumed_after is not None and resumed.resumed_after < JUNE
    # The resumed process fit the May model again (mid-block), then June's.
    assert [r.day for r in resumed.retrains] == [SPAN[0], JUNE]
    assert [r.model_id for r in resumed.retrains] == [r.model_id for r in whole.retrains]
    assert resumed.result_hash == whole.result_hash
    pd.testing.assert_frame_equal(whole.daily, resumed.daily, check_exact=True)


def test_the_backtest_retrain_is_the_live_retrain_and_scores_as_the_live_stage(
    market: Path, tmp_path: Path
) -> None:
    """The model the backtest fits at a session is the one the ``model_retrain`` DAG's task
    registers then (same id), and its scores of a later session are the research stage's
    (``score_day``) bit for bit."""
    lake = _copy(market, tmp_path / "live")
    config = research_config(RESEARCH)
    days = trading_calendar().sessions(JUNE, dt.date(2024, 6, 5))
    source, ours = _scores(lake, days)
    live = stages.retrain(stages.ResearchContext(lake, JUNE, config))
    assert live.record.model_id == source.retrains[0].model_id
    day = days[-1]
    scored = stages.score_day(stages.ResearchContext(lake, day, config), live.record.model_id)
    expected = scored[["security_id", "score", "model_id"]].sort_values("security_id")
    pd.testing.assert_frame_equal(
        ours[day].reset_index(drop=True), expected.reset_index(drop=True), check_exact=True
    )


def test_a_scan_hands_out_a_date_range_of_a_sorted_table_and_the_same_history(
    market: Path,
) -> None:
    lake = Lake(str(market))
    scanned = ScannedInputs(lake)
    first, last = dt.date(2024, 1, 2), dt.date(2024, 3, 28)
    for name in ("prices", "sentiment"):
        narrowed = scanned.rows_between(name, first, last)
        assert narrowed is not None, name  # a lake written session by session is in order
        days = pc.field("valid_date")
        wanted = (days >= pa.scalar(first, pa.date32())) & (days <= pa.scalar(last, pa.date32()))
        assert narrowed.to_table().equals(scanned.dataset(name).to_table(filter=wanted))
    # the readers that take the narrowed rows read what they read from the lake itself
    known = decision_cutoff(last)
    assert load_price_revisions(scanned, first, last, known).equals(
        load_price_revisions(lake, first, last, known)
    )
    assert load_late_facts(scanned, first, last, known).equals(
        load_late_facts(lake, first, last, known)
    )
    keys = [("security_id", "ascending"), ("date", "ascending")]
    assert (
        load_panel_rows(scanned, first, last, known, view=known, any_version=True)
        .sort_by(keys)
        .equals(
            load_panel_rows(lake, first, last, known, view=known, any_version=True).sort_by(keys)
        )
    )
    # the panel query's prices: the rows on dividends' ex-dates, every version, in order
    ex_rows = scanned.ex_date_prices()
    assert ex_rows is not None
    dividends = scanned.dataset("corporate_actions").to_table(
        columns=["security_id", "valid_date"], filter=pc.field("action_type") == "dividend"
    )
    ex_dates = {(row["security_id"], row["valid_date"]) for row in dividends.to_pylist()}
    prices = scanned.dataset("prices").to_table()
    cells = prices.select(["security_id", "valid_date"]).to_pylist()
    on_ex = [(row["security_id"], row["valid_date"]) in ex_dates for row in cells]
    assert 0 < sum(on_ex) < prices.num_rows
    assert ex_rows.to_table().equals(prices.filter(pa.array(on_ex)))
    # rows out of valid_date order: no range to hand out (the reader filters the whole scan)
    table = scanned.dataset("prices").to_table()
    assert _ascending_days(table.take(pa.array(range(table.num_rows - 1, -1, -1)))) is None


def _trees(booster: str) -> str:
    """The trees of a LightGBM model text, without its parameters block."""
    return booster[booster.index("Tree=0") : booster.index("end of trees")]


def test_backtest_fits_run_on_one_thread_with_the_trees_and_scores_of_two(market: Path) -> None:
    """The backtest's retrains fit LightGBM on one thread unless ``retrain_research`` says
    otherwise, and that changes no tree and no score of a two-thread fit (the model's id,
    which records the thread count, is its own)."""
    assert research_config({}).params["num_threads"] == 1
    assert research_config({"params": {"num_threads": 3}}).params["num_threads"] == 3
    assert research_config({"params": {"num_leaves": 7}}).params == {
        "num_leaves": 7,
        "num_threads": 1,
    }
    # The default model's shape (bagging, feature fraction, 31 leaves) on a short window.
    base = {k: v for k, v in RESEARCH.items() if k != "params"} | {"num_boost_round": 20}
    lake = ScannedInputs(Lake(str(market)))
    fits = {
        n: fit_block(lake, JUNE, SPAN[1], research_config(base | {"params": {"num_threads": n}}))
        for n in (1, 2)
    }
    one, two = fits[1], fits[2]
    assert one.record is not None and two.record is not None
    assert _trees(one.record.booster) == _trees(two.record.booster)
    assert one.record.model_id != two.record.model_id
    assert one.scores is not None and two.scores is not None
    assert one.scores["score"].to_numpy().tobytes() == two.scores["score"].to_numpy().tobytes()
