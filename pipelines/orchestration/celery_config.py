"""Celery configuration for production mode: Airflow's defaults plus a warm worker.

``[celery] celery_config_options`` points here (set by
:func:`pipelines.orchestration.production.production_environment`). Every Airflow task a
Celery worker runs is a process forked from the worker's pool process, which then parses
the DAG file and imports what the task needs. Our DAG files import Airflow's SDK and the
timetable, and nearly every task imports the lake (pandas, pyarrow, deltalake, duckdb):
paid again by each of the dozens of small mapped tasks of a daily run, that is seconds per
task. Importing them once in the worker's main process, before the pool forks, makes every
task start warm. Imports and an in-memory calendar only: nothing here starts a thread or
opens a socket, so forking after it is safe.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import import_modules

log = logging.getLogger(__name__)

#: Imported by each worker before it forks its pool, in this order.
PRELOAD_MODULES: tuple[str, ...] = (
    "airflow.sdk",
    "airflow.sdk.execution_time.task_runner",
    "pendulum",
    "pandas",
    "pyarrow",
    "pipelines.orchestration.assets",
    "pipelines.orchestration.callbacks",
    "pipelines.orchestration.timetable",
    "pipelines.lake",
    "pipelines.lake.maintenance",
)

#: Airflow's own Celery settings (broker, result backend, queues from ``[celery]``), as is.
CELERY_CONFIG: dict[str, Any] = dict(DEFAULT_CELERY_CONFIG)


@import_modules.connect
def preload_task_modules(*args: Any, **kwargs: Any) -> None:
    """Import :data:`PRELOAD_MODULES` and load the exchange calendars the DAGs use.

    Parsing a DAG file validates its :class:`ExchangeCalendarTimetable`, which builds the
    calendar's session list (seconds of exchange_calendars work); it is cached per process,
    so building it here gives every forked task a warm cache. A failure is logged and left
    to the task that needs the module, which will report the real error.
    """
    for name in PRELOAD_MODULES:
        try:
            importlib.import_module(name)
        except Exception:
            log.warning("preloading %s failed", name, exc_info=True)
    try:
        from pipelines.orchestration.timetable import ExchangeCalendarTimetable

        ExchangeCalendarTimetable().validate()  # the configured calendar, as the DAGs use
    except Exception:
        log.warning("preloading exchange calendars failed", exc_info=True)
