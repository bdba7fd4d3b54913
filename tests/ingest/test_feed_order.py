"""Feeds load in declared dependency order, user feeds included (issue 13).

A user's prices feed named so that it sorts before their security-master feed used to be
backfilled first, and every row failed ``security_known``. The backfill and the DAG now
order feeds by ONE rule: the target table (prices and corporate actions after the security
master) plus a feed's declared ``depends_on``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines.config import get_settings
from pipelines.ingest.feed_index import FeedOrderError, feed_dependencies, feed_index
from pipelines.ingest.feed_spec import load_feeds
from pipelines.ingest.runtime import backfill, ordered_feeds
from pipelines.lake import Lake
from pipelines.timeline import trading_calendar
from pipelines.vendors.clock import FrozenClock
from pipelines.vendors.inprocess import SimulatorFileSource
from pipelines.vendors.simulator import VendorSimulator
from tests.ingest.conftest import LATE_CLOCK

pytestmark = pytest.mark.integration

SHIPPED = Path(__file__).resolve().parents[2] / "pipelines/ingest/feeds"
#: The user's names sort the wrong way round: prices before the master.
USER_PRICES, USER_MASTER, USER_NEWS = "acme_a_prices", "acme_z_master", "acme_b_news"


def _user_feeds(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for shipped, name in (
        ("vendor_prices", USER_PRICES),
        ("vendor_security_master", USER_MASTER),
        ("vendor_sentiment", USER_NEWS),
    ):
        text = (
            (SHIPPED / f"{shipped}.yaml").read_text().replace(f"name: {shipped}", f"name: {name}")
        )
        if name == USER_NEWS:  # nothing in the table rule: a declared dependency
            text += f"depends_on: [{USER_MASTER}]\n"
        (directory / f"{name}.yaml").write_text(text)
    return directory


@pytest.fixture
def user_feeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    directory = _user_feeds(tmp_path / "feeds")
    monkeypatch.setenv("ALPHAFACTORY_FEEDS_DIR", str(directory))
    get_settings.cache_clear()
    yield directory
    get_settings.cache_clear()


def test_one_dependency_rule_for_backfill_and_dag(user_feeds: Path) -> None:
    feeds = load_feeds()
    names = [f.name for f in ordered_feeds(feeds, [USER_PRICES, USER_NEWS, USER_MASTER])]
    assert names.index(USER_MASTER) < names.index(USER_PRICES)
    assert names.index(USER_MASTER) < names.index(USER_NEWS)
    index = [e.name for e in feed_index()]
    assert index.index(USER_MASTER) < index.index(USER_PRICES)
    deps = feed_dependencies(feed_index())
    assert USER_MASTER in deps[USER_PRICES] and deps[USER_NEWS] == (USER_MASTER,)
    assert feed_dependencies(list(feeds.values())) == deps


def test_the_dag_wires_the_same_dependencies(user_feeds: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from pipelines.orchestration.airflow_env import DAGS_FOLDER

    bag = DagBag(dag_folder=str(DAGS_FOLDER / "vendor_ingest.py"))
    assert not bag.import_errors, bag.import_errors
    dag: Any = bag.dags["vendor_ingest"]
    assert f"ingest_{USER_MASTER}" in dag.get_task(f"ingest_{USER_PRICES}").upstream_task_ids
    assert f"ingest_{USER_MASTER}" in dag.get_task(f"ingest_{USER_NEWS}").upstream_task_ids
    assert "ingest_vendor_security_master" in dag.get_task("ingest_vendor_prices").upstream_task_ids


def test_unknown_or_cyclic_dependencies_are_refused(tmp_path: Path) -> None:
    from pipelines.ingest.feed_index import FeedEntry, in_dependency_order

    def entry(name: str, *deps: str) -> FeedEntry:
        return FeedEntry(name, "sftp", "sentiment", "c", None, None, deps)

    with pytest.raises(FeedOrderError, match="unknown"):
        feed_dependencies([entry("a", "nope")])
    with pytest.raises(FeedOrderError, match="cycle"):
        in_dependency_order([entry("a", "b"), entry("b", "a")])


def test_backfill_loads_the_users_master_before_their_prices(
    user_feeds: Path, sim: VendorSimulator, tmp_path: Path
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    days = trading_calendar().sessions(dt.date(2023, 3, 1), dt.date(2023, 3, 3))
    clock = FrozenClock(LATE_CLOCK)
    results = backfill(
        lake,
        days,
        feed_names=[USER_PRICES, USER_MASTER],
        source_factory=lambda: SimulatorFileSource(sim, clock),
        workers=1,
    )
    statuses = {name: {o.status for o in outcomes} for name, outcomes in results.items()}
    assert statuses == {USER_PRICES: {"loaded"}, USER_MASTER: {"loaded"}}, results
    assert list(results) == [USER_MASTER, USER_PRICES]
