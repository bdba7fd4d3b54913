"""daily_research through Airflow (``dag.test()``) for one session against a small lake."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest

from pipelines.config import get_settings
from pipelines.features.registry import registry
from pipelines.lake import Lake
from pipelines.orchestration.airflow_env import airflow_environment, run_dag_test
from pipelines.research.stages import stored_features, stored_universe

pytestmark = pytest.mark.e2e

SESSION = dt.date(2020, 11, 2)


@pytest.mark.e2e
@pytest.mark.slow
def test_daily_research_runs_one_task_per_feature(
    tmp_path: Path, make_simulated_lake: Callable[..., Lake]
) -> None:
    root = get_settings().lake_root
    lake = make_simulated_lake(
        Path(root), universe=40, start=dt.date(2019, 9, 3), end=dt.date(2020, 11, 30)
    )
    # the run's date must fall after the DAG's start_date; the session researched is conf's
    result = run_dag_test(
        "daily_research",
        dt.date(2024, 6, 3),
        conf={"session": SESSION.isoformat()},
        env=airflow_environment(vendor_state_dir=tmp_path / "no-vendor"),
        extra_env={"ALPHAFACTORY_LAKE_ROOT": root},
    )
    assert result.ok, result.output[-5000:]
    mapped = {k: v for k, v in result.task_states.items() if k.startswith("compute_feature[")}
    assert len(mapped) == len(registry()), result.output[-3000:]
    assert set(mapped.values()) == {"success"}
    assert result.task_states["scores"] == "success"  # no champion yet: skipped cleanly
    universe = stored_universe(lake, SESSION)
    assert universe is not None and len(universe) > 20
    assert set(stored_features(lake, SESSION)["feature"]) == set(registry())
