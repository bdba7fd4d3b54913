"""Weekly LightGBM retrain on the exchange calendar, with champion/challenger promotion.

Wiring only; the work is :func:`pipelines.research.stages.retrain`. The timetable yields
one run per trading session (21:00 New York, after the daily research); the first task
lets the run through only on the first session of each ISO week (a holiday Monday moves
the retrain to Tuesday), so the cadence follows the exchange calendar, not the wall
calendar. The new model's registry entry and the champion decision are written to the
lake; the decision takes effect from the next session's scores.
"""

from __future__ import annotations

from datetime import time, timedelta
from typing import Any

from airflow.sdk import DAG, task

from pipelines.orchestration.assets import lake_asset
from pipelines.orchestration.callbacks import on_failure_log
from pipelines.orchestration.settings_light import dag_start_date
from pipelines.orchestration.timetable import ExchangeCalendarTimetable, session_of

with DAG(
    dag_id="model_retrain",
    description="Weekly walk-forward LightGBM retrain; promote the challenger if it beats the champion.",
    schedule=ExchangeCalendarTimetable(run_at=time(21, 0)),
    start_date=dag_start_date(),
    catchup=False,
    max_active_runs=1,
    tags=["research", "models"],
    default_args={
        "owner": "quant-research",
        "retries": 1,
        "retry_delay": timedelta(minutes=5),
        "on_failure_callback": on_failure_log,
    },
) as dag:

    @task.short_circuit
    def is_retrain_session(data_interval_end: Any = None) -> bool:
        """True on the first trading session of the ISO week (or when forced by conf)."""
        from airflow.sdk import get_current_context

        from pipelines.timeline import trading_calendar

        conf = get_current_context()["dag_run"].conf or {}
        if conf.get("force"):
            return True
        day = session_of(data_interval_end)
        previous = trading_calendar().offset(day, -1)
        return previous.isocalendar()[:2] != day.isocalendar()[:2]

    @task(outlets=[lake_asset("model_registry"), lake_asset("model_champion")])
    def retrain(data_interval_end: Any = None) -> dict[str, Any]:
        """Fit the challenger at the session's close, register it, decide promotion."""
        from pipelines.research.stages import ResearchContext
        from pipelines.research.stages import retrain as retrain_at

        result = retrain_at(ResearchContext.from_settings(session_of(data_interval_end)))
        return {
            "model_id": result.record.model_id,
            "promoted": result.promoted,
            "reason": result.reason,
            "champion_id": result.champion_id,
            "oos_rank_ic": result.challenger_metric,
        }

    is_retrain_session() >> retrain()
