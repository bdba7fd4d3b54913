"""A quarantined vendor file: the failed ingest task still links its Data Docs page.

The data engineer opens a failed ``ingest_vendor_prices`` to see why; Airflow 3 stores an
extra link as an XCom the worker writes when the task ends, failed or not. The vendor
sends impossible prices for the session, the contract blocks the batch, the task fails,
and the task's "Data Docs" XCom names the GX page of that very run (on disk, failed).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.config import get_settings
from pipelines.contracts.data_docs import REPORTS_URL_ENV
from pipelines.orchestration.airflow_env import airflow_environment, run_dag_test
from pipelines.orchestration.links import DataDocsLink
from pipelines.testing.backdate import HISTORY
from pipelines.vendors.clock import FrozenClock
from pipelines.vendors.config import MarketConfig, VendorConfig
from pipelines.vendors.faults import FaultPlan
from pipelines.vendors.server import VendorEndpoints, run_vendor

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SESSION = dt.date(2024, 7, 3)
MARKET = MarketConfig(
    seed=23, universe_size=20, start=SESSION, end=dt.date(2024, 7, 12), signal_strength=0.0
)


@pytest.fixture
def vendor(tmp_path: Path) -> Iterator[VendorEndpoints]:
    cfg = VendorConfig(
        market=MARKET,
        state_dir=tmp_path / "vendor",
        clock=FrozenClock(dt.datetime(2024, 7, 4, 5, tzinfo=dt.UTC)),
        faults=FaultPlan.from_dict({SESSION.isoformat(): [{"impossible_values": {"rows": 3}}]}),
        rate_limit=10_000,
    )
    with run_vendor(cfg) as endpoints:
        yield endpoints


@pytest.mark.timeout(900)
def test_a_quarantined_ingest_task_links_its_failed_data_docs_page(
    vendor: VendorEndpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(REPORTS_URL_ENV, raising=False)
    monkeypatch.setenv("ALPHAFACTORY_VENDOR_SFTP_PORT", str(vendor.sftp_port))
    monkeypatch.setenv("ALPHAFACTORY_VENDOR_HTTP_PORT", str(vendor.http_port))
    get_settings.cache_clear()
    env = airflow_environment(vendor_host_key=vendor.host_public_key)
    lake_root = get_settings().lake_root
    run = run_dag_test(
        "vendor_ingest",
        SESSION,
        conf={"backdate_reason": HISTORY.reason},
        env=env,
        extra_env={"ALPHAFACTORY_LAKE_ROOT": lake_root, "ALPHAFACTORY_INGEST_POKE_SECONDS": "1"},
    )
    assert not run.ok
    assert run.task_states["ingest_vendor_prices"] == "failed", run.task_states
    with sqlite3.connect(env.db_path) as db:
        links = dict(
            db.execute(
                "SELECT task_id, value FROM xcom WHERE key = ?", (DataDocsLink().xcom_key,)
            ).fetchall()
        )
    link = json.loads(links["ingest_vendor_prices"])
    prefix = "/alphafactory/reports/"
    assert link.startswith(prefix + "data_docs/validations/prices_2024-07-03"), links
    page = Path(lake_root).resolve() / "reports" / link.removeprefix(prefix)
    assert page.is_file()
    assert "Failed" in page.read_text()  # the run that blocked, not an older one
