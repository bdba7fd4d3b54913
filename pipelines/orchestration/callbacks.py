"""Callbacks shared by every DAG.

They run in the task's process after a failure, so they must never raise and must never
log secrets: they log one line with ids, the logical date and the exception's type and
message (not its traceback, which Airflow already logs with the task).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("alphafactory.orchestration")


def failure_message(context: Mapping[str, Any]) -> str:
    """One line naming the DAG, task (with map index), run, logical date and exception."""
    ti = context.get("ti") or context.get("task_instance")
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
    task_id = getattr(ti, "task_id", None) or getattr(context.get("task"), "task_id", "?")
    map_index = getattr(ti, "map_index", -1)
    if isinstance(map_index, int) and map_index >= 0:
        task_id = f"{task_id}[{map_index}]"
    run_id = context.get("run_id") or getattr(ti, "run_id", "?")
    logical_date = context.get("logical_date")
    when = logical_date.isoformat() if logical_date is not None else "none"
    exc = context.get("exception")
    what = f"{type(exc).__name__}: {exc}" if exc is not None else "no exception recorded"
    # Newlines would split the "one line" promise (and log parsers) apart.
    what = " ".join(str(what).split())
    return f"FAILED dag={dag_id} task={task_id} run_id={run_id} logical_date={when} error={what}"


def on_failure_log(context: Mapping[str, Any]) -> None:
    """``on_failure_callback``: log :func:`failure_message` at ERROR; never raises."""
    try:
        log.error(failure_message(context))
    except Exception:  # a callback that raises would mask the task's own failure
        log.exception("on_failure_log could not format the failure context")
