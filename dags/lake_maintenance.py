"""Lake maintenance after each trading session: compact, cluster, vacuum, checkpoint.

Wiring only; the work is :func:`pipelines.lake.maintenance.maintain`. One mapped task
instance per declared table, so one table's failure retries alone and never blocks the
others. The table list is read at run time: ``pipelines.lake`` imports deltalake and duckdb,
which DAG parsing must not pay for. For the same reason each instance emits its table's
asset (``alphafactory://lake/<table>``) through an asset alias rather than a static outlet:
a static outlet on a mapped task would mark every table updated by every instance.
"""

from __future__ import annotations

from datetime import time, timedelta
from typing import Any

from airflow.sdk import DAG, task

from pipelines.orchestration.assets import lake_asset, lake_tables_alias
from pipelines.orchestration.callbacks import on_failure_log
from pipelines.orchestration.settings_light import dag_start_date
from pipelines.orchestration.timetable import ExchangeCalendarTimetable

with DAG(
    dag_id="lake_maintenance",
    description="Compact, cluster, vacuum and checkpoint every lake table after the close.",
    # 21:30 New York: after the close and after the 19:00 ingestion has landed the session.
    schedule=ExchangeCalendarTimetable(run_at=time(21, 30)),
    start_date=dag_start_date(),
    catchup=False,
    max_active_runs=1,
    tags=["lake", "maintenance"],
    default_args={
        "owner": "data-platform",
        "retries": 3,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=30),
        "on_failure_callback": on_failure_log,
    },
) as dag:

    @task
    def declared_tables() -> list[str]:
        """Every table declared in pipelines/lake/catalog/, sorted."""
        from pipelines.lake.catalog import all_tables

        return sorted(all_tables())

    @task(outlets=[lake_tables_alias()], map_index_template="{{ task.op_kwargs['table'] }}")
    def maintain_table(table: str, *, outlet_events: Any = None) -> dict[str, Any]:
        """Maintain one table; emit its lake asset event; return a small report."""
        from pipelines.lake import Lake
        from pipelines.lake.maintenance import maintain

        (report,) = maintain(Lake.from_settings(), [table])
        outlet_events[lake_tables_alias()].add(lake_asset(table))
        return {
            "table": report.table,
            "version_before": report.version_before,
            "version_after": report.version_after,
            "vacuumed_files": report.vacuumed_files,
            "skipped": report.skipped,
        }

    maintain_table.expand(table=declared_tables())
