"""Historical sessions through Airflow: ``dags test vendor_ingest`` for 2019 and 1997.

Issue 13: the DAGs used to start in 2024, and a run for an earlier session "succeeded"
with zero tasks. Here each run goes through the same path as ``alphafactory airflow
dags-test vendor_ingest 2019-03-14`` (:func:`run_dag_test`: ``dag.test()`` in a child
process on the embedded home) against the vendor simulator serving a five-security market
from that session over loopback SFTP and REST. The run must execute every task of the DAG
(each sensor and ingest task, not zero of them) and load the session's prices with the
vendor's publish time as their knowledge time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.config import get_settings
from pipelines.ingest.feed_index import feed_index
from pipelines.lake import Lake
from pipelines.orchestration.airflow_env import airflow_environment, run_dag_test
from pipelines.testing.backdate import HISTORY
from pipelines.timeline import trading_calendar
from pipelines.vendors.clock import FrozenClock
from pipelines.vendors.config import MarketConfig, VendorConfig
from pipelines.vendors.server import VendorEndpoints, run_vendor

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

#: A 2019 session and a 1990s one. Each is the first day of its five-security market, so
#: the security master the session's prices are checked against is delivered with it.
SESSIONS = {"2019": dt.date(2019, 3, 14), "1997": dt.date(1997, 6, 5)}


def _market(first: dt.date) -> MarketConfig:
    return MarketConfig(
        seed=13, universe_size=5, start=first, end=first + dt.timedelta(days=6), signal_strength=0.0
    )


@pytest.fixture(params=sorted(SESSIONS), ids=sorted(SESSIONS))
def historical(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[dt.date, VendorEndpoints, MarketConfig]]:
    session = SESSIONS[request.param]
    market = _market(session)
    # A week after the session: every file and record of the market is published.
    clock = FrozenClock(dt.datetime.combine(market.end, dt.time(12), dt.UTC))
    cfg = VendorConfig(market=market, state_dir=tmp_path / "vendor", clock=clock, rate_limit=10_000)
    with run_vendor(cfg) as endpoints:
        yield session, endpoints, market


def test_dags_test_vendor_ingest_runs_every_task_for_a_historical_session(
    historical: tuple[dt.date, VendorEndpoints, MarketConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    session, ep, market = historical
    assert trading_calendar().is_session(session)
    monkeypatch.setenv("ALPHAFACTORY_VENDOR_SFTP_PORT", str(ep.sftp_port))
    monkeypatch.setenv("ALPHAFACTORY_VENDOR_HTTP_PORT", str(ep.http_port))
    get_settings.cache_clear()
    env = airflow_environment(vendor_host_key=ep.host_public_key)
    lake_root = get_settings().lake_root

    result = run_dag_test(
        "vendor_ingest",
        session,
        conf={"backdate_reason": HISTORY.reason},
        env=env,
        extra_env={"ALPHAFACTORY_LAKE_ROOT": lake_root, "ALPHAFACTORY_INGEST_POKE_SECONDS": "1"},
    )

    assert result.ok, result.output[-5000:]
    # Every task of the DAG ran — one ingest per feed, one sensor per SFTP feed — not zero.
    entries = feed_index()
    expected = {f"ingest_{e.name}" for e in entries} | {
        f"wait_{e.name}" for e in entries if e.protocol == "sftp"
    }
    assert set(result.task_states) == expected
    assert set(result.task_states.values()) == {"success"}
    # The run is the session's: its interval ends at the session's run time (19:00 New York).
    assert result.data_interval is not None
    end = dt.datetime.fromisoformat(result.data_interval[1])
    assert end.astimezone(dt.UTC) == dt.datetime.combine(session, dt.time(23), dt.UTC)

    prices = Lake(lake_root).as_of(
        "prices", known_at=dt.datetime.combine(market.end, dt.time(12), dt.UTC), valid_at=session
    )
    assert prices.num_rows == market.universe_size
    # Knowledge time is the vendor's publish time for that session (18:00 New York), not the
    # moment the test ran: a 2019 fact is known in 2019.
    assert {t.date() for t in prices.column("known_at").to_pylist()} == {session}
    print(f"vendor_ingest {session}: {len(result.task_states)} tasks in {result.seconds:.1f}s")
