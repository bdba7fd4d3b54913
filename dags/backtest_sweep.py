"""A backtest sweep: one mapped task per variant of a grid, then one comparison report.

Wiring only; the work is :mod:`pipelines.backtest.sweep`. Triggered by hand with the sweep
in the run's conf (``alphafactory backtest sweep --grid FILE`` builds it from the grid
file, so no worker needs the file): ``variants`` lists the variant ids, ``backtest`` runs
one variant per mapped task instance (any worker; a retry reuses what the first attempt
finished), ``compare`` ranks them and writes the report with the deflated Sharpe ratio.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, task

from pipelines.orchestration.callbacks import on_failure_log
from pipelines.orchestration.settings_light import dag_start_date


def _sweep() -> Any:
    from airflow.sdk import get_current_context

    from pipelines.backtest.sweep import Sweep

    return Sweep.from_conf(get_current_context()["dag_run"].conf or {})


with DAG(
    dag_id="backtest_sweep",
    description="Backtest every variant of a parameter grid; rank them with the deflated Sharpe.",
    schedule=None,
    start_date=dag_start_date(),
    catchup=False,
    tags=["research", "backtest"],
    default_args={
        "owner": "quant-research",
        "retries": 1,
        "retry_delay": timedelta(minutes=1),
        "on_failure_callback": on_failure_log,
    },
) as dag:

    @task
    def variants() -> list[str]:
        """The sweep's variant ids (the grid is validated again here)."""
        return [v.variant_id for v in _sweep().variants]

    @task(map_index_template="{{ task.op_kwargs['variant_id'] }}")
    def backtest(variant_id: str) -> dict[str, Any]:
        """Backtest one variant; its result goes to the lake and its own folder."""
        from pipelines.backtest.sweep import run_variant
        from pipelines.lake import Lake

        return dict(run_variant(Lake.from_settings(), _sweep(), variant_id).summary())

    @task
    def compare(done: Any) -> dict[str, Any]:
        """Rank the variants; write the comparison report; return where it is."""
        from pipelines.backtest.sweep import write_comparison
        from pipelines.lake import Lake

        del done  # the results are read from the variants' folders
        return dict(write_comparison(Lake.from_settings(), _sweep()).summary())

    compare(backtest.expand(variant_id=variants()))
