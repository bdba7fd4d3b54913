"""vendor_ingest through Airflow against the running simulator: sessions, a holiday, a late drop.

The simulator (SFTP + REST on loopback, a frozen clock the test moves) runs in this
process; each DAG run is ``dag.test()`` in a child process (:func:`run_dag_test`) that
reaches the vendor through the ``sftp_vendor``/``http_vendor`` connections of
:func:`airflow_environment`. A 20-security market starting on 3 July 2024:

* 3 July: the first session — security master, corporate actions, prices over SFTP;
  fundamentals and sentiment over REST (everything published before it) — loads;
* 4 July (Independence Day): the timetable has no run;
* 5 July: the vendor publishes 3 hours late. With a short deadline the sensors give up
  and the run fails naming feed and day; once the folder is out a rerun loads it (and
  adds nothing to the REST feeds the failed run loaded), and ingesting the day again adds
  nothing to silver.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines.config import get_settings
from pipelines.ingest.runtime import ingest_day
from pipelines.lake import Lake
from pipelines.orchestration.airflow_env import AirflowEnv, airflow_environment, run_dag_test
from pipelines.testing.backdate import HISTORY
from pipelines.vendors.clock import FrozenClock
from pipelines.vendors.config import MarketConfig, VendorConfig
from pipelines.vendors.faults import FaultPlan
from pipelines.vendors.server import VendorEndpoints, run_vendor

pytestmark = pytest.mark.e2e

FIRST, HOLIDAY, LATE = dt.date(2024, 7, 3), dt.date(2024, 7, 4), dt.date(2024, 7, 5)
MARKET = MarketConfig(
    seed=23, universe_size=20, start=FIRST, end=dt.date(2024, 7, 12), signal_strength=0.0
)
SILVER = ("security_master", "corporate_actions", "prices", "fundamentals", "sentiment")
SFTP_FEEDS = ("vendor_security_master", "vendor_corporate_actions", "vendor_prices")


def utc(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), dt.UTC)


@pytest.fixture
def vendor(tmp_path: Path) -> Iterator[tuple[VendorEndpoints, FrozenClock]]:
    clock = FrozenClock(utc(HOLIDAY, 5))  # 1 am New York: 3 July's windows are closed
    cfg = VendorConfig(
        market=MARKET,
        state_dir=tmp_path / "vendor",
        clock=clock,
        faults=FaultPlan.from_dict({LATE.isoformat(): [{"late": {"hours": 3}}]}),
        rate_limit=10_000,
    )
    with run_vendor(cfg) as endpoints:
        yield endpoints, clock


def _env(monkeypatch: pytest.MonkeyPatch, ep: VendorEndpoints) -> AirflowEnv:
    monkeypatch.setenv("ALPHAFACTORY_VENDOR_SFTP_PORT", str(ep.sftp_port))
    monkeypatch.setenv("ALPHAFACTORY_VENDOR_HTTP_PORT", str(ep.http_port))
    get_settings.cache_clear()
    return airflow_environment(vendor_host_key=ep.host_public_key)


def _asset_extras(env: AirflowEnv) -> dict[str, dict[str, Any]]:
    """Asset URI → extra of its latest event, from the metadata DB the runs wrote."""
    with sqlite3.connect(env.db_path) as db:
        rows = db.execute(
            "SELECT a.uri, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
            "ORDER BY e.id"
        ).fetchall()
    return {uri: json.loads(extra) if isinstance(extra, str) else extra for uri, extra in rows}


def _versions(lake: Lake) -> dict[str, int]:
    return {t: dt_.version() for t in SILVER if (dt_ := lake.table(t)) is not None}


@pytest.mark.e2e
@pytest.mark.slow
def test_vendor_ingest_sessions_holiday_and_late_drop(
    vendor: tuple[VendorEndpoints, FrozenClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.orchestration.timetable import ExchangeCalendarTimetable

    ep, clock = vendor
    env = _env(monkeypatch, ep)
    lake_root = get_settings().lake_root
    fast = {"ALPHAFACTORY_LAKE_ROOT": lake_root, "ALPHAFACTORY_INGEST_POKE_SECONDS": "1"}
    started = time.perf_counter()

    # 3 July: every feed loads.
    first = run_dag_test(
        "vendor_ingest", FIRST, conf={"backdate_reason": HISTORY.reason}, env=env, extra_env=fast
    )
    assert first.ok, first.output[-5000:]
    assert set(first.task_states.values()) == {"success"}
    assert {f"wait_{f}" for f in SFTP_FEEDS} <= set(first.task_states)
    lake = Lake(lake_root)
    prices = lake.as_of("prices", known_at=utc(HOLIDAY, 5), valid_at=FIRST)
    assert prices.num_rows == MARKET.universe_size
    assert lake.as_of("sentiment", known_at=utc(HOLIDAY, 5), valid_at=FIRST).num_rows > 0
    assert lake.table("fundamentals") is not None
    # Each load's asset event says what it loaded (issue 18: the Assets page showed {}).
    extras = _asset_extras(env)
    prices_extra = extras["alphafactory://lake/prices"]
    assert prices_extra["rows"] == MARKET.universe_size
    assert prices_extra["contract"]["result"] in ("passed", "warned")
    assert prices_extra["quarantine_ids"] == [] and prices_extra["open_quarantines"] == []
    assert prices_extra["data_docs"] and all(Path(p).is_file() for p in prices_extra["data_docs"])

    # 4 July: no run. The run after 3 July's is 5 July's, and its interval spans the holiday.
    timetable = ExchangeCalendarTimetable(calendar="XNYS", run_at=dt.time(19, 0))
    assert not timetable.is_session(HOLIDAY)
    from airflow.timetables.base import TimeRestriction

    nxt = timetable.next_dagrun_info(
        last_automated_data_interval=timetable.data_interval_for(FIRST),
        restriction=TimeRestriction(earliest=None, latest=None, catchup=True),
    )
    assert nxt is not None and nxt.data_interval is not None
    assert nxt.data_interval.start == timetable.run_time(FIRST)
    assert nxt.data_interval.end == timetable.run_time(LATE)

    # 5 July, 20:00 New York: the drop (due 18:00) is 3 hours late; the deadline is 3 s.
    clock.set(utc(LATE, 0) + dt.timedelta(days=1))
    late = run_dag_test(
        "vendor_ingest",
        LATE,
        conf={"backdate_reason": HISTORY.reason},
        env=env,
        extra_env={**fast, "ALPHAFACTORY_INGEST_DEADLINE_SECONDS": "3"},
    )
    assert not late.ok
    for feed in SFTP_FEEDS:
        assert late.task_states[f"wait_{feed}"] == "failed"
        assert late.task_states[f"ingest_{feed}"] == "upstream_failed"
    assert f"feed vendor_prices: nothing published for {LATE.isoformat()}" in late.output
    assert lake.as_of("prices", known_at=utc(LATE, 23), valid_at=LATE).num_rows == 0

    # Published at 21:00 New York: the rerun loads the day. The REST feeds, loaded by the
    # failed run already, get nothing new from it.
    clock.set(utc(LATE, 5) + dt.timedelta(days=1))
    rest_before = {t: v for t, v in _versions(lake).items() if t in ("fundamentals", "sentiment")}
    rerun = run_dag_test(
        "vendor_ingest", LATE, conf={"backdate_reason": HISTORY.reason}, env=env, extra_env=fast
    )
    assert rerun.ok, rerun.output[-5000:]
    lake = Lake(lake_root)
    loaded = lake.as_of("prices", known_at=utc(LATE, 23) + dt.timedelta(days=1), valid_at=LATE)
    assert loaded.num_rows == MARKET.universe_size
    # known_at is the vendor's actual (late) publish time, 21:00 New York = 01:00 UTC.
    assert set(loaded.column("known_at").to_pylist()) == {utc(LATE, 1) + dt.timedelta(days=1)}
    assert {t: _versions(lake)[t] for t in rest_before} == rest_before

    # Ingesting the day once more (what each task of a third run does, here without
    # paying Airflow's start-up again) finds every file already loaded.
    for key, value in env.values.items():
        if key.startswith("AIRFLOW_CONN_"):
            monkeypatch.setenv(key, value)
    before = _versions(lake)
    for feed in (*SFTP_FEEDS, "vendor_fundamentals", "vendor_sentiment"):
        outcomes = ingest_day(lake, LATE, feed)
        # (A REST window without records has nothing to be "unchanged": it reports 0 rows.)
        assert all(o.status == "unchanged" or o.rows == 0 for o in outcomes), outcomes
    assert _versions(Lake(lake_root)) == before
    print(f"vendor_ingest e2e: 3 DAG runs in {time.perf_counter() - started:.1f}s")
