"""A throwaway Airflow home for tests that import Airflow in the test process.

Airflow reads ``AIRFLOW_HOME`` and the plugins folder once, when first imported, so this
must run before any test module imports it (the conftests here call it at import time).
Without it, importing ``airflow`` creates ``~/airflow``; with it, the plugins folder holds
the same one-line shim the embedded home gets, so the custom timetable is registered.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def use_throwaway_airflow_home() -> None:
    """Point this process's Airflow at a temp home with our plugin (idempotent)."""
    marker = os.environ.get("_ALPHAFACTORY_TEST_AIRFLOW_HOME")
    if marker and marker == os.environ.get("AIRFLOW_HOME"):
        return
    from pipelines.orchestration.airflow_env import PLUGIN_SHIM, PLUGIN_SHIM_NAME

    home = Path(tempfile.mkdtemp(prefix="alphafactory-airflow-home-"))
    plugins = home / "plugins"
    plugins.mkdir()
    (plugins / PLUGIN_SHIM_NAME).write_text(PLUGIN_SHIM)
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["_ALPHAFACTORY_TEST_AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(plugins)
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home / 'airflow.db'}"
