"""Fixtures for ingestion: a small market with one fault per knob, in-process and served.

The fault plan and the server fixtures come from ``tests/vendors``; the market here starts
a few sessions before the first fault day so a seeded lake is cheap to build. Building
the seeded lake runs the real contract gate once per process, which also pays Great
Expectations' import (~15 s) once for every test in the directory.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipelines.ingest.feed_spec import FeedSpec, load_feeds
from pipelines.ingest.flow import FeedNotPublished, ingest_sftp_day
from pipelines.ingest.gate import contract_gate, pass_all
from pipelines.ingest.runtime import VendorSources, ingest_day
from pipelines.lake import Lake
from pipelines.testing.backdate import HISTORY
from pipelines.timeline import trading_calendar
from pipelines.vendors.clock import FrozenClock
from pipelines.vendors.config import MarketConfig
from pipelines.vendors.faults import FaultPlan
from pipelines.vendors.inprocess import SimulatorFileSource, SimulatorRecordSource
from pipelines.vendors.server import VendorEndpoints
from pipelines.vendors.simulator import VendorSimulator
from tests.vendors.conftest import (  # noqa: F401  (fixtures re-used by name)
    FAULT_DAYS,
    RunningVendor,
    fault_plan,
    make_vendor,
    vendor,
)

#: 200 securities over two months; the fault days (FAULT_DAYS) fall in its second week.
INGEST_MARKET = MarketConfig(
    seed=11, universe_size=200, start=dt.date(2023, 3, 1), end=dt.date(2023, 4, 28)
)
#: Sessions fully ingested into the seeded lake (every SFTP feed, real contracts).
SEEDED_DAYS = (dt.date(2023, 3, 1), dt.date(2023, 3, 2))
CLEAN_DAY = dt.date(2023, 3, 3)
#: The session after the correction day, whose folder carries the correction file.
LAST_FAULT_DAY = dt.date(2023, 3, 17)
#: Everything in the market is published by then.
LATE_CLOCK = dt.datetime(2023, 6, 1, 12, tzinfo=dt.UTC)
SFTP_FEEDS = ("vendor_security_master", "vendor_corporate_actions", "vendor_prices")


@pytest.fixture(scope="session")
def sim(fault_plan: FaultPlan) -> VendorSimulator:  # noqa: F811
    """The ingest market with one fault per knob (overrides ``tests/vendors``' ``sim``)."""
    return VendorSimulator(INGEST_MARKET, faults=fault_plan)


@pytest.fixture(scope="session")
def fixed_sim() -> VendorSimulator:
    """The same market from a vendor that fixed its faults: what a re-delivery serves."""
    return VendorSimulator(INGEST_MARKET)


@pytest.fixture(scope="session")
def feeds() -> dict[str, FeedSpec]:
    return load_feeds()


def inprocess(sim: VendorSimulator, at: dt.datetime = LATE_CLOCK) -> VendorSources:
    """The simulator as in-process sources, with a clock the caller may move."""
    clock = FrozenClock(at)
    return VendorSources(SimulatorFileSource(sim, clock), SimulatorRecordSource(sim, clock))


@pytest.fixture
def sources(sim: VendorSimulator) -> VendorSources:
    return inprocess(sim)


@pytest.fixture(scope="session")
def seeded_template(
    tmp_path_factory: pytest.TempPathFactory, sim: VendorSimulator, feeds: dict[str, FeedSpec]
) -> Path:
    """A lake holding SEEDED_DAYS of every SFTP feed and the whole security master.

    The security master of later sessions is loaded without a contract run (it is setup,
    not under test): prices of a fault day are checked against the master known then.
    """
    root = tmp_path_factory.mktemp("seeded") / "lake"
    lake = Lake(str(root))
    src = inprocess(sim)
    for day in SEEDED_DAYS:
        for name in SFTP_FEEDS:
            ingest_day(lake, day, name, sources=src, backdate=HISTORY)
    master = feeds["vendor_security_master"]
    for day in sim.sessions:
        if day <= SEEDED_DAYS[-1] or day > LAST_FAULT_DAY:
            continue
        try:
            ingest_sftp_day(
                lake,
                master,
                day,
                src.files,
                pass_all,
                previous_session=trading_calendar().previous(day),
                backdate=HISTORY,
            )
        except FeedNotPublished:  # the missing-day fault
            continue
    return root


@pytest.fixture
def seeded_lake(seeded_template: Path, tmp_path: Path) -> Lake:
    """A private copy of the seeded lake (Delta logs hold relative paths, so a copy works)."""
    root = tmp_path / "seeded-lake"
    shutil.copytree(seeded_template, root)
    return Lake(str(root))


def use_gate() -> object:
    """The production gate (named here so tests read as what they run)."""
    return contract_gate


# --- live vendor over loopback --------------------------------------------------------


@dataclass(frozen=True)
class Connections:
    """The ``AIRFLOW_CONN_*`` values a test exported (JSON strings)."""

    sftp: str
    http: str


def export_connections(
    monkeypatch: pytest.MonkeyPatch, ep: VendorEndpoints, *, key_auth: bool = False
) -> Connections:
    """Point ``sftp_vendor``/``http_vendor`` at ``ep`` the way the embedded Airflow does.

    The JSON comes from :func:`pipelines.ingest.connections.vendor_connections` (the same
    code that configures the scheduler), with the served host key pinned.
    """
    from pipelines.config import get_settings
    from pipelines.ingest.connections import vendor_connections

    monkeypatch.setenv("ALPHAFACTORY_VENDOR_HOST", ep.host)
    monkeypatch.setenv("ALPHAFACTORY_VENDOR_SFTP_PORT", str(ep.sftp_port))
    monkeypatch.setenv("ALPHAFACTORY_VENDOR_HTTP_PORT", str(ep.http_port))
    monkeypatch.setenv("ALPHAFACTORY_VENDOR_PASSWORD", ep.password)
    monkeypatch.setenv("ALPHAFACTORY_VENDOR_TOKEN", ep.token)
    get_settings.cache_clear()
    values = vendor_connections(vendor_host_key=ep.host_public_key).values
    sftp, http = values["AIRFLOW_CONN_SFTP_VENDOR"], values["AIRFLOW_CONN_HTTP_VENDOR"]
    if key_auth:
        conn = json.loads(sftp)
        del conn["password"]
        conn["extra"]["key_file"] = str(ep.client_key_path)
        sftp = json.dumps(conn)
    monkeypatch.setenv("AIRFLOW_CONN_SFTP_VENDOR", sftp)
    monkeypatch.setenv("AIRFLOW_CONN_HTTP_VENDOR", http)
    return Connections(sftp, http)


@pytest.fixture
def live(
    vendor: RunningVendor,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[RunningVendor]:
    """The module's running vendor, with the Airflow connections exported for it."""
    export_connections(monkeypatch, vendor.endpoints)
    saved = vendor.clock.now()
    vendor.clock.set(LATE_CLOCK)
    try:
        yield vendor
    finally:
        vendor.clock.set(saved)
