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
        from pipelines.daily.tasks import record_approval

        result = super().execute_complete(context=context, event=event)
        chosen = result["chosen_options"][0]
        decision = "approved" if chosen == self.APPROVE else "rejected"
        who = result.get("responded_by_user") or result.get("responded_by") or "timeout default"
        record_approval(self.session, decision, actor=f"PM: {who}")
        return result
