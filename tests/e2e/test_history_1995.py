"""History before the old calendar's reach: ingest, research and backtest sessions of 1995.

The simulated vendor serves a market configured through settings
(``ALPHAFACTORY_HISTORY_START``/``_HISTORY_END``: 1994-01-03 .. 1995-04-28). Fifteen months
of history are backfilled from the in-process simulator (the real backfill path, real
contracts); the last week of March 1995 is then ingested session by session over loopback
SFTP and REST through Airflow's hooks, as the ``vendor_ingest`` DAG does. Research (universe,
features, labels, retrain, scores) and a short backtest then run on 1995 sessions through
the public library functions. A date before 1990 is refused with one line naming the range.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.config import get_settings
from pipelines.ingest.feed_spec import load_feeds
from pipelines.ingest.gate import contract_gate
from pipelines.ingest.runtime import backfill, ingest_day, ordered_feeds
from pipelines.lake import Lake
from pipelines.testing.backdate import HISTORY as AS_PUBLISHED
from pipelines.timeline import LATEST, OutsideCalendarError, trading_calendar
from pipelines.vendors.clock import FrozenClock
from pipelines.vendors.config import MarketConfig
from pipelines.vendors.inprocess import SimulatorFileSource, SimulatorRecordSource
from pipelines.vendors.server import run_vendor
from pipelines.vendors.simulator import VendorSimulator
from tests.ingest.conftest import export_connections
from tests.vendors.conftest import vendor_config

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HISTORY = (dt.date(1994, 1, 3), dt.date(1995, 4, 28))
LIVE = (dt.date(1995, 3, 27), dt.date(1995, 3, 31))  # ingested over loopback, one by one
#: Everything in the market is published by then.
LATE = dt.datetime(1995, 6, 1, 12, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def history_env() -> Iterator[None]:
    mp = pytest.MonkeyPatch()
    mp.setenv("ALPHAFACTORY_HISTORY_START", HISTORY[0].isoformat())
    mp.setenv("ALPHAFACTORY_HISTORY_END", HISTORY[1].isoformat())
    mp.setenv("ALPHAFACTORY_UNIVERSE_SIZE", "30")
    mp.setenv("ALPHAFACTORY_SEED", "5")
    get_settings.cache_clear()
    yield
    mp.undo()
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def sim(history_env: None) -> VendorSimulator:
    market = MarketConfig.from_settings(signal_strength=0.3)
    assert (market.start, market.end, market.universe_size) == (*HISTORY, 30)
    return VendorSimulator(market)


@pytest.fixture(scope="module")
def lake_1995(sim: VendorSimulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lake]:
    """The 1995 lake: history backfilled in process, LIVE ingested over loopback."""
    lake = Lake(str(tmp_path_factory.mktemp("history-1995") / "lake"))
    clock = FrozenClock(LATE)
    cal = trading_calendar()
    before = cal.sessions(HISTORY[0], cal.previous_session(LIVE[0]))
    out = backfill(
        lake,
        before,
        source_factory=lambda: SimulatorFileSource(sim, clock),
        records=SimulatorRecordSource(sim, clock),
        gate=contract_gate,
        workers=2,
        backdate=AS_PUBLISHED,
    )
    assert out and all(o.status in ("loaded", "warned") for v in out.values() for o in v)

    state = tmp_path_factory.mktemp("vendor-state")
    with run_vendor(vendor_config(state, clock, market=sim.config), simulator=sim) as endpoints:
        mp = pytest.MonkeyPatch()
        try:
            export_connections(mp, endpoints)
            for day in cal.sessions(*LIVE):
                for feed in ordered_feeds(load_feeds()):
                    outcomes = ingest_day(lake, day, feed.name, backdate=AS_PUBLISHED)  # SFTPHook
                    assert outcomes, (day, feed.name)
                    assert all(o.status in ("loaded", "warned") for o in outcomes), outcomes
        finally:
            mp.undo()
    yield lake


def test_1995_sessions_are_ingested(lake_1995: Lake, sim: VendorSimulator) -> None:
    day = LIVE[1]
    prices = lake_1995.as_of("prices", known_at=sim.publish_at(day), valid_at=day)  # type: ignore[arg-type]
    assert prices.num_rows == len(sim.clean_prices(day)) > 0
    runs = lake_1995.as_of(
        "ingest_runs", known_at=LATEST, valid_at=(LIVE[0], LIVE[1]), columns=["feed", "status"]
    ).to_pylist()
    assert {r["feed"] for r in runs} == set(load_feeds())


def test_research_on_1995(lake_1995: Lake) -> None:
    from pipelines.research import stages
    from tests.research.lake_helpers import SMALL_CONFIG

    config = dataclasses.replace(SMALL_CONFIG, train_sessions=150, min_train_sessions=80)
    ctx = stages.ResearchContext(store=lake_1995, day=LIVE[1], config=config)
    members = stages.compute_universe(ctx)
    assert len(members) > 0
    features = stages.compute_features(ctx)
    assert len(features) > 0
    stages.compute_labels(ctx)
    result = stages.retrain(ctx)
    assert result.record.model_id
    scores = stages.score_day(ctx, model_id=result.record.model_id)
    assert len(scores) == len(members)


def test_backtest_on_1995(lake_1995: Lake, tmp_path: Path) -> None:
    from pipelines.backtest import run_backtest
    from pipelines.daily.config import DailyConfig

    config = DailyConfig(lookback_sessions=60, scorer="builtin", record_portfolio_tables=False)
    result = run_backtest(lake_1995, *LIVE, config, write_report=False)
    assert result.metrics.sessions == len(trading_calendar().sessions(*LIVE))
    assert result.start.year == 1995


def test_a_date_before_the_calendar_is_one_line() -> None:
    with pytest.raises(OutsideCalendarError) as info:
        trading_calendar().sessions(dt.date(1989, 12, 1), dt.date(1990, 1, 31))
    assert "\n" not in str(info.value)
    assert "1989-12-01 is outside the XNYS calendar's range 1990-01-01.." in str(info.value)
