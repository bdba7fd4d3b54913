"""The Airflow plugin that registers Alpha Factory's custom timetable and extra link.

The scheduler and the DAG processor rebuild a DAG's timetable from its serialized form and
only accept custom classes that a plugin lists in ``timetables``. The embedded Airflow home
gets a one-line shim in its plugins folder importing :class:`AlphaFactoryPlugin` (written by
:func:`pipelines.orchestration.airflow_env.prepare_airflow_home`).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from pipelines.orchestration.links import DataDocsLink
from pipelines.orchestration.reports_app import fastapi_apps
from pipelines.orchestration.timetable import ExchangeCalendarTimetable


class AlphaFactoryPlugin(AirflowPlugin):
    """Registers :class:`ExchangeCalendarTimetable` for (de)serialization, the "Data
    Docs" extra link of validating tasks (:mod:`pipelines.orchestration.links`) and the
    reports directory it points at on the API server
    (:mod:`pipelines.orchestration.reports_app`)."""

    name = "alphafactory"
    timetables = [ExchangeCalendarTimetable]  # noqa: RUF012 - AirflowPlugin declares a list
    operator_extra_links = [DataDocsLink()]  # noqa: RUF012 - AirflowPlugin declares a list
    # Built when read (only the API server reads it): FastAPI and Airflow's security
    # module cost every other process ~1 s of CPU to import.
    fastapi_apps = fastapi_apps()
