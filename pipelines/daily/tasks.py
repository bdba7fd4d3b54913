"""Entry points of the ``portfolio_rebalance`` DAG's tasks: one per stage.

Each takes the session as an ISO date (from the DAG), builds the context from settings
(:meth:`DayContext.from_settings`) and returns a small JSON-able summary for XCom.
The loop's configuration is :func:`load_config`: the YAML file named by
``ALPHAFACTORY_DAILY_CONFIG`` (default: ``pipelines/daily/configs/production.yaml`` —
auto-approval off; resolved by :meth:`DailyConfig.from_env`, which the DAG file also reads
for the approval timeout), with ``auto_approve`` overridable per run (``dag_run.conf``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pipelines.daily import stages
from pipelines.daily.config import DailyConfig

if TYPE_CHECKING:
    from pipelines.daily.protocols import ScoreSource


def load_config(auto_approve: bool | None = None) -> DailyConfig:
    """The daily config (module docstring); ``auto_approve`` overrides the file's."""
    cfg = DailyConfig.from_env()
    if auto_approve is not None:
        cfg = cfg.model_copy(
            update={"approval": cfg.approval.model_copy(update={"auto_approve": auto_approve})}
        )
    return cfg


def _json(value: Any) -> Any:
    """NaN → None, recursively (XCom is JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return value


#: Production's config for a session as a layer above decides it (staged rollout: a policy
#: or scorer promoted to full), with the score source to use (None: the config's own).
Resolver = Callable[[DailyConfig, dt.date], "tuple[DailyConfig, ScoreSource | None]"]


def _ctx(
    session: str, auto_approve: bool | None = None, resolve: Resolver | None = None
) -> stages.DayContext:
    day = dt.date.fromisoformat(session)
    config, source = load_config(auto_approve), None
    if resolve is not None:
        config, source = resolve(config, day)
    ctx = stages.DayContext.from_settings(day, config)
    if source is not None:
        ctx.scores_source = source
    return ctx


def run_stage(stage: str, session: str, resolve: Resolver | None = None) -> Any:
    """Run ``stage`` (research, risk_model, optimize, pretrade, execute, reconcile, report)
    under the file's config, or the one ``resolve`` makes production's for the session."""
    ctx = _ctx(session, resolve=resolve)
    fn = {
        "research": stages.research,
        "risk_model": stages.risk_model,
        "optimize": stages.optimize,
        "pretrade": stages.pretrade,
        "execute": stages.execute,
        "reconcile": stages.reconcile,
        "report": stages.report,
    }[stage]
    return _json(fn(ctx))


def approval_policy(session: str, auto_approve: bool | None = None) -> dict[str, Any]:
    """What the approval step should do: ``auto`` (policy) or ``ask`` (a PM), and the
    request's subject, body (with the report's location) and timeout."""
    from pipelines.report.pm import pm_report_markdown, pm_report_uri

    ctx = _ctx(session, auto_approve)
    preview = ctx.state.find("pretrade") or {}
    policy = ctx.config.approval
    report = pm_report_uri(ctx.lake, ctx.portfolio_id, ctx.day)
    return {
        "mode": "auto" if policy.auto_approve else "ask",
        "timeout_minutes": policy.timeout_minutes,
        "subject": f"Approve {ctx.portfolio_id} orders for {ctx.trade_date}",
        "body": (
            f"{preview.get('orders', 0)} orders, notional {preview.get('notional', 0):,.0f}, "
            f"{preview.get('rejected', 0)} rejected by pre-trade checks.\n\n"
            f"{pm_report_markdown(report)}"
        ),
    }


def record_approval(
    session: str, decision: str | None, actor: str, auto_approve: bool | None = None
) -> str:
    """Audit the decision (``approved``/``rejected``; None = apply the policy)."""
    return stages.approve(_ctx(session, auto_approve), decision, actor=actor)


def preview_report(session: str) -> str:
    """Write the PM report before the approval request (targets, risk, pre-trade)."""
    return str(stages.report(_ctx(session)))
