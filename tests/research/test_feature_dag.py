"""A feature written in a new file becomes a DAG task and lands in the features table.

Nothing else is touched: the file goes into a sandbox directory named by
``ALPHAFACTORY_FEATURE_PATHS`` (the same discovery the library directory uses), the
``daily_research`` DAG is parsed by Airflow's DagBag, and the mapped task's own callable
computes the feature for a session into the lake.
"""

from __future__ import annotations

import datetime as dt
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipelines.config import get_settings
from pipelines.features.registry import registry, unregister
from pipelines.lake import Lake
from pipelines.orchestration.airflow_env import DAGS_FOLDER
from pipelines.research.feature_index import feature_names
from pipelines.research.stages import stored_features
from tests.orchestration.airflow_home import use_throwaway_airflow_home

pytestmark = pytest.mark.unit

NEW = "tmp_close_over_3d_high"
SESSION = dt.date(2020, 11, 2)

FEATURE_FILE = f'''
from pipelines.features import feature
from pipelines.pit.ops import rolling_max


@feature(name="{NEW}", inputs=["close"], lookback=2)
def close_over_3d_high(panel):
    """Close over its 3-session high."""
    close = panel.array("close")
    return close / rolling_max(close, 3)
'''


def test_static_index_matches_the_registry() -> None:
    assert feature_names() == sorted(registry())


def _mapped_features(dag: Any) -> list[str]:
    task = dag.get_task("compute_feature")
    return list(task.op_kwargs_expand_input.value["feature"])


@pytest.mark.integration
def test_new_feature_file_becomes_a_task_and_a_table_column(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_simulated_lake: Callable[..., Lake],
) -> None:
    use_throwaway_airflow_home()
    from airflow.dag_processing.dagbag import DagBag

    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    before = DagBag(dag_folder=str(DAGS_FOLDER / "daily_research.py")).dags["daily_research"]
    assert NEW not in _mapped_features(before)

    (sandbox / "my_alpha.py").write_text(textwrap.dedent(FEATURE_FILE))
    monkeypatch.setenv("ALPHAFACTORY_FEATURE_PATHS", str(sandbox))
    get_settings.cache_clear()
    try:
        bag = DagBag(dag_folder=str(DAGS_FOLDER / "daily_research.py"))
        assert not bag.import_errors, bag.import_errors
        dag = bag.dags["daily_research"]
        mapped = _mapped_features(dag)
        assert NEW in mapped and len(mapped) == len(registry())

        lake = make_simulated_lake(
            Path(get_settings().lake_root),
            universe=40,
            start=dt.date(2020, 9, 1),
            end=dt.date(2020, 11, 30),
        )
        task = dag.get_task("compute_feature")
        written = task.python_callable(feature=NEW, session=SESSION.isoformat())
        rows = stored_features(lake, SESSION)
        values = rows[rows["feature"] == NEW]["value"].to_numpy()
        assert written == len(values) > 20
        assert np.all((values > 0) & (values <= 1.0))
    finally:
        unregister(NEW)
