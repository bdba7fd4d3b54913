"""PM sign-off in Airflow: the standard provider's ``ApprovalOperator``, audited.

The operator waits for a PM's "Approve"/"Reject" in Airflow's Required Actions (the
request names the day's PM report); its default — also applied when
``response_timeout`` passes — is "Reject", so silence sends no orders. On top of the
stock behaviour (a rejection skips the execution task), the answer is written to the
execution audit trail before anything downstream runs or is skipped.

Imported by the DAG at parse time: it imports only Airflow; the audit code is imported
when the answer arrives.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator


class AuditedApprovalOperator(ApprovalOperator):
    """:class:`ApprovalOperator` that records the decision for ``session`` in the audit trail."""

    template_fields: Sequence[str] = (*ApprovalOperator.template_fields, "session")

    def __init__(self, *, session: str, **kwargs: Any) -> None:
        kwargs.setdefault("defaults", ApprovalOperator.REJECT)
        super().__init__(**kwargs)
        self.session = session

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        """Record the answer (a PM's, or the timeout's default) for ``session`` in the audit
        trail, then let :class:`ApprovalOperator` act on it (a "Reject" skips downstream)."""
        from pipelines.daily.tasks import record_approval

        # Recorded before the parent acts: on "Reject" it skips the downstream tasks by
        # raising (DownstreamTasksSkipped, Airflow 3), so nothing after it would run. An
        # error event (no answer and no default) is the parent's to raise.
        if "error" not in event:
            chosen = event["chosen_options"]
            self.validate_chosen_options(chosen)
            decision = "approved" if chosen == [self.APPROVE] else "rejected"
            record_approval(self.session, decision, actor=self._actor(event, chosen))
        return super().execute_complete(context=context, event=event)

    def _actor(self, event: dict[str, Any], chosen: list[str]) -> str:
        """Who decided: ``PM: <user name>``, or the timeout default that answered instead."""
        if event.get("timedout"):
            timeout = self.response_timeout
            waited = f" after {timeout.total_seconds() / 60:g} min" if timeout else ""
            return f"timeout default{waited}: {', '.join(chosen)}"
        # responded_by_user is Airflow's HITLUser, a {"id", "name"} mapping.
        user = event.get("responded_by_user") or {}
        return f"PM: {user.get('name') or user.get('id') or 'unknown'}"
