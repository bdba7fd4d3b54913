"""Weekly leak audit: the past week's research outputs recomputed as known at each session.

Wiring only; the work is :func:`pipelines.audit.leaks.audit_leaks`. The timetable yields one
run per trading session (22:00 New York, after the research and the retrain); the first
task lets the run through only on the first session of each ISO week, which audits the
five sessions before it. ``conf`` may force a run and name the range
(``{"force": true, "start": "2025-06-02", "end": "2025-06-06"}``). The verdict lands in the
lake table ``leak_audits``; ``alphafactory status`` shows the last one. A leak does not fail
the task (the verdict is the product), an error does.
"""

from __future__ import annotations

from datetime import time, timedelta
from typing import Any

from airflow.sdk import DAG, task

from pipelines.orchestration.assets import lake_asset
from pipelines.orchestration.callbacks import on_failure_log
from pipelines.orchestration.settings_light import dag_start_date
from pipelines.orchestration.timetable import ExchangeCalendarTimetable, session_of

AUDITED_SESSIONS = 5

with DAG(
    dag_id="leak_audit",
    description="Weekly: recompute the past week's research outputs as known at each session; "
    "report leaks.",
    schedule=ExchangeCalendarTimetable(run_at=time(22, 0)),
    start_date=dag_start_date(),
    catchup=False,
    max_active_runs=1,
    tags=["research", "audit"],
    default_args={
        "owner": "data-platform",
        "retries": 1,
        "retry_delay": timedelta(minutes=5),
        "on_failure_callback": on_failure_log,
    },
) as dag:

    @task.short_circuit
    def is_audit_session(data_interval_end: Any = None) -> bool:
        """True on the first trading session of the ISO week (or when forced by conf)."""
        from airflow.sdk import get_current_context

        from pipelines.timeline import trading_calendar

        conf = get_current_context()["dag_run"].conf or {}
        if conf.get("force"):
            return True
        day = session_of(data_interval_end)
        previous = trading_calendar().offset(day, -1)
        return previous.isocalendar()[:2] != day.isocalendar()[:2]

    @task(outlets=[lake_asset("leak_audits")])
    def audit(data_interval_end: Any = None) -> dict[str, Any]:
        """Audit the sessions before this one; append the verdict to ``leak_audits``."""
        from datetime import date

        from airflow.sdk import get_current_context

        from pipelines.audit.leaks import audit_leaks, record
        from pipelines.lake import Lake
        from pipelines.timeline import trading_calendar

        conf = get_current_context()["dag_run"].conf or {}
        calendar = trading_calendar()
        end = (
            date.fromisoformat(conf["end"])
            if conf.get("end")
            else calendar.offset(session_of(data_interval_end), -1)
        )
        start = (
            date.fromisoformat(conf["start"])
            if conf.get("start")
            else calendar.offset(end, 1 - AUDITED_SESSIONS)
        )
        lake = Lake.from_settings()
        report = audit_leaks(lake, start, end)
        record(lake, report)
        return {
            "audit_id": report.audit_id,
            "start": report.start.isoformat(),
            "end": report.end.isoformat(),
            "verdict": report.verdict,
            "leaks": [c.describe() for c in report.leaks],
        }

    is_audit_session() >> audit()
