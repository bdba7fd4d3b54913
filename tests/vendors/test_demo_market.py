"""``alphafactory vendor serve`` (no options) and ``alphafactory demo`` serve the same market.

Issue 13: "the shipped demo's ``vendor serve`` builds its market from a different date than
``make demo``, so re-ingesting a demo day stores a second, different version of it". Both
now build it with :meth:`MarketConfig.from_settings`, whose default window is anchored to
the calendar year (:func:`default_market_end`), not to the day the command runs. Here: the
config each command builds — ``serve`` with its own parameter defaults, read from its
signature, and the demo's ``VendorConfig.from_settings`` — on two different days of the
year give the same market; a demo day's folder rendered from each has the same sha256 per
file; and ingesting that day from the second after the first adds nothing to the lake.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import inspect
from collections.abc import Iterator
from typing import Any

import pytest

from pipelines.cli import vendor as vendor_cli
from pipelines.cli.airflow import vendor_state_dir
from pipelines.config import get_settings
from pipelines.ingest.feed_spec import load_feeds
from pipelines.ingest.flow import ingest_sftp_day
from pipelines.ingest.gate import pass_all
from pipelines.lake import Lake
from pipelines.vendors.clock import FrozenClock
from pipelines.vendors.config import MarketConfig, VendorConfig, default_market_end
from pipelines.vendors.inprocess import SimulatorFileSource
from pipelines.vendors.simulator import VendorSimulator

pytestmark = pytest.mark.unit

YEAR = dt.date.today().year


@pytest.fixture(autouse=True)
def _small_default_market(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The shipped defaults, but a universe small enough to generate in a second."""
    for name in ("HISTORY_START", "HISTORY_END", "HISTORY_YEARS", "SEED"):
        monkeypatch.delenv(f"ALPHAFACTORY_{name}", raising=False)
    monkeypatch.setenv("ALPHAFACTORY_UNIVERSE_SIZE", "12")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _serve_config(today: dt.date) -> VendorConfig:
    """What ``alphafactory vendor serve`` builds on ``today`` with every option left at its
    default (read from its signature, so a changed default is caught here)."""
    defaults: dict[str, Any] = {
        name: p.default for name, p in inspect.signature(vendor_cli.serve).parameters.items()
    }
    params = inspect.signature(vendor_cli._build_config).parameters
    kwargs = {k: v for k, v in defaults.items() if k in params}
    kwargs["state_dir"] = kwargs["state_dir"] or vendor_state_dir()  # as serve() does
    original = MarketConfig.from_settings

    def on_day(**market: Any) -> MarketConfig:
        return original(today=today, **market)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(vendor_cli.MarketConfig, "from_settings", on_day)
        return vendor_cli._build_config(**kwargs)


def _demo_market(today: dt.date) -> MarketConfig:
    """What ``alphafactory demo`` serves (``VendorConfig.from_settings``) on ``today``."""
    demo = VendorConfig.from_settings(state_dir=vendor_state_dir())
    # from_settings reads the system date; rebuild the same call for ``today``.
    assert demo.market == MarketConfig.from_settings(today=dt.date.today())
    return MarketConfig.from_settings(today=today)


def _checksums(sim: VendorSimulator, day: dt.date) -> dict[str, str]:
    return {name: hashlib.sha256(data).hexdigest() for name, data in sim.day_files(day).items()}


def test_serve_and_demo_serve_byte_identical_days() -> None:
    # The demo ran in March; `vendor serve` is started in November of the same year.
    demo_market = _demo_market(dt.date(YEAR, 3, 2))
    served = _serve_config(dt.date(YEAR, 11, 20))
    assert served.market == demo_market
    assert served.market.end == default_market_end() == dt.date(YEAR, 12, 31)
    assert served.state_dir == vendor_state_dir()  # the host key `airflow env` pins

    demo_sim, served_sim = VendorSimulator(demo_market), VendorSimulator(served.market)
    day = demo_sim.sessions[len(demo_sim.sessions) // 2]
    assert _checksums(demo_sim, day) == _checksums(served_sim, day)
    assert set(_checksums(demo_sim, day)) >= {"prices.csv.gz", "manifest.json"}


def test_reingesting_a_demo_day_from_vendor_serve_adds_nothing(lake: Lake) -> None:
    demo_sim = VendorSimulator(_demo_market(dt.date(YEAR, 1, 5)))
    served_sim = VendorSimulator(_serve_config(dt.date(YEAR, 6, 30)).market)
    day = demo_sim.sessions[0]  # its security master file has every security
    clock = FrozenClock(dt.datetime.combine(day + dt.timedelta(days=3), dt.time(), dt.UTC))
    feed = load_feeds()["vendor_security_master"]

    (first,) = ingest_sftp_day(lake, feed, day, SimulatorFileSource(demo_sim, clock), pass_all)
    assert first.status == "loaded" and first.rows > 0
    versions = {t: lake.table(t).version() for t in ("security_master", "raw_manifest")}  # type: ignore[union-attr]
    (again,) = ingest_sftp_day(lake, feed, day, SimulatorFileSource(served_sim, clock), pass_all)
    assert again.status == "unchanged" and again.sha256 == first.sha256
    # Same bytes: no second raw file version, no new silver version.
    assert {t: lake.table(t).version() for t in versions} == versions  # type: ignore[union-attr]
