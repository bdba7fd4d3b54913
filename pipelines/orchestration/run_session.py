"""Which trading session a DAG run is for, the same way for every DAG.

``vendor_ingest`` (exchange-calendar timetable) reads it from ``data_interval_end``:
the run for session ``D`` ends at ``D``'s run time (after the close, in the calendar's
time zone). Asset-scheduled DAGs (``daily_research``, ``portfolio_rebalance``) follow
the same rule so that a run *for* ``D`` — triggered by ``D``'s ingest, or started with
``alphafactory airflow dags-test daily_research D`` (which runs at ``D``'s run time) —
computes ``D``, not the session before.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import pendulum


def run_session(
    conf: Mapping[str, Any] | None,
    data_interval_end: dt.datetime | None,
    logical_date: dt.datetime | None,
    run_after: dt.datetime | None,
) -> dt.date:
    """``conf["session"]`` when given, else the latest session on or before the local
    (exchange time zone) date of the run's ``data_interval_end`` (falling back to its
    logical date, then ``run_after``, for runs without an interval)."""
    from pipelines.timeline import trading_calendar

    requested = (conf or {}).get("session")
    if requested:
        return dt.date.fromisoformat(str(requested))
    when = data_interval_end or logical_date or run_after
    if when is None:
        raise ValueError("the run has neither a data interval, a logical date nor run_after")
    calendar = trading_calendar()
    local = pendulum.instance(when).in_timezone(str(calendar.tz)).date()
    return calendar.back(local, 1)[0]


def session_run_time(session: dt.date) -> dt.datetime:
    """The instant (UTC) the runs for ``session`` are due: its ``vendor_ingest`` run time."""
    from pipelines.orchestration.timetable import ExchangeCalendarTimetable

    return ExchangeCalendarTimetable().run_time(session)
