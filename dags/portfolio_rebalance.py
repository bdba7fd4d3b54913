"""From the day's scores to orders at the broker, with a PM's sign-off in between.

Wiring only; each task calls one stage of :mod:`pipelines.daily` (through
:mod:`pipelines.daily.tasks`): risk model → optimizer → pre-trade preview → PM report →
approval → execution → reconciliation → final report. Scheduled on the ``alpha_scores``
asset that ``daily_research`` emits, so it runs once a session's scores have landed; the
session is ``dag_run.conf["session"]`` or the latest exchange session on or before the
New York date of the run's ``data_interval_end``
(:func:`pipelines.orchestration.run_session.run_session`, as every DAG).

Approval: the loop's config (``ALPHAFACTORY_DAILY_CONFIG``) says whether orders are
auto-approved (demo) or wait for a PM (production, the default), how long the PM has
(``approval.timeout_minutes``) and what no answer means (``approval.on_timeout``, default
"Reject"). The file is read when the DAG is parsed, so every component must see the same
one. A "Reject" — the PM's, or the timeout's default — skips execution; the decision is in
the audit trail either way, and reconciliation and the report still run. ``solver`` and
``broker`` pools bound how many optimizations and broker sessions run at once across DAG
runs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, get_current_context, task

from pipelines.daily.approval import AuditedApprovalOperator
from pipelines.daily.config import DailyConfig
from pipelines.orchestration.assets import lake_asset
from pipelines.orchestration.callbacks import on_failure_log
from pipelines.orchestration.settings_light import dag_start_date

# The same file the tasks read (DailyConfig.from_env), so the timeout and the default
# answer Airflow applies are the policy's, not a copy of it.
APPROVAL = DailyConfig.from_env().approval
APPROVAL_TIMEOUT = timedelta(minutes=APPROVAL.timeout_minutes)
APPROVAL_DEFAULT = (
    AuditedApprovalOperator.APPROVE
    if APPROVAL.on_timeout == "approve"
    else AuditedApprovalOperator.REJECT
)
SESSION = "{{ ti.xcom_pull(task_ids='resolve_session') }}"

with DAG(
    dag_id="portfolio_rebalance",
    description="Risk model, optimizer, pre-trade checks, PM approval, execution, reconciliation, report.",
    schedule=[lake_asset("alpha_scores")],
    start_date=dag_start_date(),
    catchup=False,
    max_active_runs=1,
    tags=["portfolio", "execution", "report"],
    default_args={
        "owner": "portfolio-management",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=10),
        "on_failure_callback": on_failure_log,
    },
) as dag:

    @task
    def resolve_session() -> str:
        """The session to rebalance (ISO date): conf["session"], else the run's session."""
        from pipelines.orchestration.run_session import run_session

        dag_run: Any = get_current_context()["dag_run"]
        day = run_session(
            dag_run.conf, dag_run.data_interval_end, dag_run.logical_date, dag_run.run_after
        )
        return day.isoformat()

    @task
    def scores(session: str) -> Any:
        """The session's alpha scores (``alpha_scores``, or the builtin scorer)."""
        from pipelines.rollout.tasks import production_stage as run_stage

        return run_stage("research", session)

    @task(pool="solver")
    def risk_model(session: str) -> Any:
        from pipelines.rollout.tasks import production_stage as run_stage

        return run_stage("risk_model", session)

    @task(pool="solver")
    def optimize(session: str) -> Any:
        from pipelines.rollout.tasks import production_stage as run_stage

        return run_stage("optimize", session)

    @task
    def pretrade(session: str) -> Any:
        """Orders implied by the targets and their pre-trade verdicts (nothing sent)."""
        from pipelines.rollout.tasks import production_stage as run_stage

        return run_stage("pretrade", session)

    @task
    def approval_request(session: str) -> dict[str, Any]:
        """The PM report as of now, and the approval request pointing at it."""
        from pipelines.daily.tasks import approval_policy, preview_report

        preview_report(session)
        conf = get_current_context()["dag_run"].conf or {}
        return approval_policy(session, conf.get("auto_approve"))

    @task.branch
    def approval_mode(request: dict[str, Any]) -> str:
        return "auto_approve" if request["mode"] == "auto" else "pm_approval"

    @task
    def auto_approve(session: str) -> str:
        """Auto-approval policy: record it in the audit trail."""
        from pipelines.daily.tasks import record_approval

        conf = get_current_context()["dag_run"].conf or {}
        return record_approval(session, None, "policy", conf.get("auto_approve"))

    pm_approval = AuditedApprovalOperator(
        task_id="pm_approval",
        session=SESSION,
        subject="{{ ti.xcom_pull(task_ids='approval_request')['subject'] }}",
        body="{{ ti.xcom_pull(task_ids='approval_request')['body'] }}",
        response_timeout=APPROVAL_TIMEOUT,
        defaults=APPROVAL_DEFAULT,
    )

    @task(pool="broker", trigger_rule="none_failed_min_one_success")
    def execute(session: str) -> Any:
        """Approved orders to the broker (the stage sends nothing without an approval)."""
        from pipelines.rollout.tasks import production_stage as run_stage

        return run_stage("execute", session)

    @task(pool="broker", trigger_rule="none_failed")
    def reconcile(session: str) -> Any:
        from pipelines.rollout.tasks import production_stage as run_stage

        return run_stage("reconcile", session)

    @task(trigger_rule="none_failed")
    def rollout(session: str) -> Any:
        """Staged rollout's daily step: every active candidate's shadow books, its gates,
        automatic rollbacks and promotions (a no-op without candidates)."""
        from pipelines.rollout.tasks import run_rollout

        return run_rollout(session)

    @task(trigger_rule="none_failed")
    def report(session: str) -> str:
        """The final PM report (with the day's book and P&L)."""
        from pipelines.rollout.tasks import production_stage as run_stage

        path: str = run_stage("report", session)
        return path

    session: Any = resolve_session()
    request: Any = approval_request(session)
    (scores(session) >> risk_model(session) >> optimize(session) >> pretrade(session) >> request)
    mode = approval_mode(request)
    executed = execute(session)
    mode >> [auto_approve(session), pm_approval] >> executed
    executed >> reconcile(session) >> rollout(session) >> report(session)
