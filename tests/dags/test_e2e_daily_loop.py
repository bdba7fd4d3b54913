"""portfolio_rebalance through Airflow (``dag.test``) for one session on a small market:
every task succeeds, orders leave (auto-approval policy), the book is reconciled and the
PM report is written."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from pipelines.execution.records import read_day
from pipelines.lake import Lake
from pipelines.orchestration.airflow_env import airflow_environment, create_pools, run_dag_test
from pipelines.report import pm_report_uri
from tests.daily.helpers import CONFIG, LOOP_DAYS, copy_root, shared_loop_root

pytestmark = pytest.mark.e2e

SESSION = dt.date(2024, 6, 6)  # the session after the helper's loop days


@pytest.mark.e2e
@pytest.mark.slow
def test_portfolio_rebalance_runs_for_one_session(
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
    print(f"portfolio_rebalance: {result.seconds:.1f}s, {result.task_states}")
    assert result.ok, result.output[-5000:]
    states = result.task_states
    assert states["pm_approval"] == "skipped" and states["auto_approve"] == "success"
    for task in ("optimize", "pretrade", "execute", "reconcile", "report"):
        assert states[task] == "success", task
    lake = Lake(str(root / "lake"))
    trade_date = dt.date(2024, 6, 7)
    orders = read_day(lake, "orders", trade_date, CONFIG.portfolio_id)
    assert len(orders) > 0
    recon = read_day(lake, "reconciliation", SESSION, CONFIG.portfolio_id)
    assert not recon.empty and (recon["status"] == "break").sum() == 0
    assert Path(pm_report_uri(lake, CONFIG.portfolio_id, SESSION)).is_file()
    assert LOOP_DAYS[-1] < SESSION
