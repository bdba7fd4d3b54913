"""Settings DAG files read at parse time, as plain values.

Values come from :func:`pipelines.config.get_settings` (the ``ALPHAFACTORY_*`` variables),
imported inside each function: importing this module costs nothing, and the first call
costs about 0.1 s (pydantic itself is already loaded by Airflow; measured: importing
``pipelines.config`` after ``airflow.sdk`` takes ~0.08 s, building the settings ~0.03 s,
once per process — against ~6 s for ``airflow.sdk``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pendulum import DateTime


def ingest_deadline() -> float:
    """Seconds an SFTP sensor waits for a session's files before the run fails loudly."""
    from pipelines.config import get_settings

    return get_settings().ingest_deadline_seconds


def ingest_poke_interval() -> float:
    """Seconds between two looks for the files."""
    from pipelines.config import get_settings

    return get_settings().ingest_poke_seconds


def dag_start_date() -> DateTime:
    """Every DAG's ``start_date``: the trading calendar's start (``ALPHAFACTORY_CALENDAR_START``).

    Any session the calendar covers (1990 onwards by default) can be run by hand
    (``dags test``, a manual trigger); ``catchup=False`` keeps the scheduler from
    back-filling them all.
    """
    import pendulum

    from pipelines.config import get_settings
    from pipelines.orchestration.timetable import DEFAULT_TZ

    start = get_settings().calendar_start
    return pendulum.datetime(start.year, start.month, start.day, tz=DEFAULT_TZ)
