"""lake_maintenance through Airflow for one session, against a temp lake and Airflow home."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import pytest

from pipelines.config import get_settings
from pipelines.lake import Lake
from pipelines.orchestration.airflow_env import ChainedRun, airflow_environment, run_dag_chain
from pipelines.orchestration.assets import lake_asset_uri
from tests.lake.helpers import prices, ts

pytestmark = pytest.mark.e2e

NEXT = date(2024, 7, 8)  # the session after the holiday weekend


@pytest.mark.e2e
@pytest.mark.slow
def test_lake_maintenance_runs_for_one_session(tmp_path: Path) -> None:
    # The autouse conftest fixture points ALPHAFACTORY_LAKE_ROOT/AIRFLOW_HOME at tmp_path.
    lake_root = get_settings().lake_root
    lake = Lake(lake_root)
    for day in (2, 3, 4, 5):  # several small commits: something to compact
        lake.write("prices", prices(day, ["A", "B"]), known_at=ts(day))
    version_before = lake.table("prices").version()

    started = time.perf_counter()
    reported: list[str] = []
    # Two sessions in one dag.test() process (what `make demo` does with its three DAGs):
    # each run is reported as it ends, in order.
    result, again = run_dag_chain(
        [ChainedRun("lake_maintenance", date(2024, 7, 5)), ChainedRun("lake_maintenance", NEXT)],
        env=airflow_environment(vendor_state_dir=tmp_path / "no-vendor"),
        extra_env={"ALPHAFACTORY_LAKE_ROOT": lake_root},
        log_file=tmp_path / "chain.log",
        on_result=lambda r: reported.append(str(r.logical_date)),
    )
    wall = time.perf_counter() - started
    assert again.ok and again.logical_date != result.logical_date
    assert reported == [result.logical_date, again.logical_date]
    assert "lake_maintenance" in (tmp_path / "chain.log").read_text()
    print(
        f"lake_maintenance e2e: {wall:.1f}s wall (DB migration included), "
        f"dag test {result.seconds:.1f}s, {len(result.task_states)} task instances"
    )

    assert result.ok, result.output[-5000:]
    assert result.task_states["declared_tables"] == "success"
    mapped = {k: v for k, v in result.task_states.items() if k.startswith("maintain_table[")}
    from pipelines.lake.catalog import all_tables

    assert len(mapped) == len(all_tables()) and set(mapped.values()) == {"success"}
    # The run for session 2024-07-05 covers (3 July 21:30 ET, 5 July 21:30 ET]: the holiday
    # on 4 July is inside the interval, not a run of its own.
    assert result.data_interval == ("2024-07-04T01:30:00+00:00", "2024-07-06T01:30:00+00:00")
    assert lake_asset_uri("prices") in result.asset_events
    assert len(result.asset_events) == len(all_tables())
    assert Lake(lake_root).table("prices").version() > version_before  # it really maintained
