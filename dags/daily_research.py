"""Daily research after the session's silver data lands: universe → features → scores.

Wiring only; the work is :mod:`pipelines.research.stages`. Scheduled on the lake assets the
``vendor_ingest`` DAG emits for the silver tables, so it runs once all of a session's feeds
are loaded. One mapped task instance per registered feature: the names come from
:func:`pipelines.research.feature_index.feature_names`, a static scan that imports no feature code,
so a feature written in a new file under ``pipelines/features/library/`` (or a new
``sql/features/*.sql``) becomes a task at the next parse without touching this file.

The session is ``dag_run.conf["session"]`` when given (manual runs, backfills), else the
latest exchange session on or before the New York date of the run's ``data_interval_end``
(:func:`pipelines.orchestration.run_session.run_session`, vendor_ingest's convention):
``alphafactory airflow dags-test daily_research D`` computes ``D``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, get_current_context, task

from pipelines.orchestration.assets import lake_asset
from pipelines.orchestration.callbacks import on_failure_log
from pipelines.orchestration.settings_light import dag_start_date
from pipelines.research.feature_index import feature_names

SILVER_TABLES = ("security_master", "corporate_actions", "prices", "fundamentals", "sentiment")

with DAG(
    dag_id="daily_research",
    description="Point-in-time universe, one task per registered feature, labels, scores.",
    schedule=[lake_asset(table) for table in SILVER_TABLES],
    start_date=dag_start_date(),
    catchup=False,
    max_active_runs=1,
    tags=["research", "features", "scores"],
    default_args={
        "owner": "quant-research",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=15),
        "on_failure_callback": on_failure_log,
    },
) as dag:

    @task
    def resolve_session() -> str:
        """The session to research (ISO date): conf["session"], else the run's session."""
        from pipelines.orchestration.run_session import run_session

        dag_run: Any = get_current_context()["dag_run"]
        day = run_session(
            dag_run.conf, dag_run.data_interval_end, dag_run.logical_date, dag_run.run_after
        )
        return day.isoformat()

    @task(outlets=[lake_asset("universe")])
    def universe(session: str) -> int:
        """Write the session's point-in-time universe; return its size."""
        import datetime as dt

        from pipelines.research.stages import ResearchContext, compute_universe

        return len(compute_universe(ResearchContext.from_settings(dt.date.fromisoformat(session))))

    @task(outlets=[lake_asset("features")], map_index_template="{{ task.op_kwargs['feature'] }}")
    def compute_feature(feature: str, session: str) -> int:
        """Compute one registered feature for the session into ``features``; rows written."""
        import datetime as dt

        from pipelines.research.stages import ResearchContext, compute_features

        ctx = ResearchContext.from_settings(dt.date.fromisoformat(session))
        return len(compute_features(ctx.with_features([feature])))

    @task(outlets=[lake_asset("labels")])
    def labels(session: str) -> int:
        """Write the labels whose horizon ended at this session's close."""
        import datetime as dt

        from pipelines.research.stages import ResearchContext, compute_labels

        return len(compute_labels(ResearchContext.from_settings(dt.date.fromisoformat(session))))

    @task(outlets=[lake_asset("alpha_scores")])
    def scores(session: str) -> dict[str, Any]:
        """Score the universe with the champion model; skip cleanly before the first one."""
        import datetime as dt

        from pipelines.research.stages import NoChampionError, ResearchContext, score_day

        try:
            frame = score_day(ResearchContext.from_settings(dt.date.fromisoformat(session)))
        except NoChampionError as exc:
            return {"scored": 0, "reason": str(exc)}
        return {"scored": len(frame), "model_id": str(frame["model_id"].iloc[0])}

    @task(outlets=[lake_asset("research_diagnostics")])
    def diagnostics(session: str) -> int:
        """Store IC / quantile diagnostics of the score dates whose returns matured today."""
        import datetime as dt

        from pipelines.research.stages import ResearchContext, diagnose

        return len(diagnose(ResearchContext.from_settings(dt.date.fromisoformat(session))))

    # an XComArg at parse time, the session string when the tasks run
    session: Any = resolve_session()
    members = universe(session)
    features = compute_feature.partial(session=session).expand(feature=feature_names())
    scored = scores(session)
    members >> features >> scored
    scored >> diagnostics(session)
    members >> labels(session)
