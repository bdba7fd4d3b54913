"""The Airflow plugin that registers Alpha Factory's custom timetable.

The scheduler and the DAG processor rebuild a DAG's timetable from its serialized form and
only accept custom classes that a plugin lists in ``timetables``. The embedded Airflow home
gets a one-line shim in its plugins folder importing :class:`AlphaFactoryPlugin` (written by
:func:`pipelines.orchestration.airflow_env.prepare_airflow_home`).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from pipelines.orchestration.timetable import ExchangeCalendarTimetable


class AlphaFactoryPlugin(AirflowPlugin):
    """Registers :class:`ExchangeCalendarTimetable` for (de)serialization."""

    name = "alphafactory"
    timetables = [ExchangeCalendarTimetable]  # noqa: RUF012 - AirflowPlugin declares a list
