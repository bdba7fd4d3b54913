"""A session decided through Airflow (``portfolio_rebalance`` under ``dags test``, every
stage a task) replays bit-identical (issue 17)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from pipelines.lake import Lake
from pipelines.orchestration.airflow_env import airflow_environment, create_pools, run_dag_test
from pipelines.replay import replay_session
from tests.daily.helpers import CONFIG, copy_root, shared_loop_root

pytestmark = pytest.mark.e2e

SESSION = dt.date(2024, 6, 6)  # the session after the shared loop's days


def _versions(lake: Lake) -> dict[str, int | None]:
    from pipelines.lake.catalog import all_tables

    out: dict[str, int | None] = {}
    for name in all_tables():
        table = lake.table(name)
        out[name] = None if table is None else table.version()
    return out


@pytest.mark.e2e
@pytest.mark.slow
def test_a_session_run_through_airflow_replays_bit_identical(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = copy_root(shared_loop_root(tmp_path_factory.getbasetemp()), tmp_path / "root")
    config = tmp_path / "daily.yaml"
    data = CONFIG.model_dump(mode="json")
    data["approval"]["auto_approve"] = True
    config.write_text(yaml.safe_dump(data))
    env = airflow_environment(vendor_state_dir=tmp_path / "no-vendor")
    create_pools(env)
    result = run_dag_test(
        "portfolio_rebalance",
        SESSION,
        conf={"session": SESSION.isoformat()},
        env=env,
        extra_env={
            "ALPHAFACTORY_LAKE_ROOT": str(root / "lake"),
            "ALPHAFACTORY_DAILY_CONFIG": str(config),
        },
    )
    assert result.ok, result.output[-5000:]
    lake = Lake(str(root / "lake"))
    before = _versions(lake)
    replay = replay_session(lake, SESSION, CONFIG.portfolio_id)
    assert _versions(lake) == before, "the replay wrote to the lake"
    verdict = {a.artefact: a.difference for a in replay.artefacts}
    assert verdict == dict.fromkeys(verdict), verdict
    assert set(verdict) == {"risk model", "targets", "orders", "pre-trade verdicts"}
    assert replay.book_source == "reconciliation" and replay.settings.startswith("recorded")
    compared = {a.artefact: a.compared for a in replay.artefacts}
    assert "target_portfolios" in compared["targets"] and compared["orders"] == ("orders",)
