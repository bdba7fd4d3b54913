"""The staged rollout's audit trail (written by :mod:`pipelines.rollout`).

``rollout_events`` holds every step of every candidate (a model or a policy moving
paper → canary → full): its start, each session's gate evaluation with the measured
values, every promotion and rollback (automatic or by a person), with who and why. A
candidate's stage is the ``stage_after`` of its latest event; the PM report's "Rollout"
section and ``alphafactory rollout status`` read this table only.
"""

from __future__ import annotations

import pyarrow as pa

from pipelines.lake.spec import UTC_TS, TableSpec, column

ROLLOUT_EVENTS = TableSpec(
    name="rollout_events",
    description="Staged rollout audit: start, daily gate values, promotions and rollbacks per candidate.",
    key=("event_id",),
    fields=(
        column("event_id", pa.string(), False, "candidate, sequence number and event"),
        column("candidate_id", pa.string(), False),
        column("portfolio_id", pa.string(), False, "the production portfolio it shadows"),
        column("kind", pa.string(), False, "model | policy | scorer"),
        column("ref", pa.string(), False, "model id, policy name or scorer"),
        column("seq", pa.int64(), False, "0, 1, … per candidate: the order of its events"),
        column("event", pa.string(), False, "start | gates | promote | rollback"),
        column("stage_before", pa.string()),
        column("stage_after", pa.string(), False, "paper | canary | full | rolled_back"),
        column("sessions", pa.int64(), doc="sessions of the stage in the gate window"),
        column("ic", pa.float64(), doc="mean live rank IC of the candidate's scores"),
        column("tracking_error", pa.float64(), doc="annualized, canary vs paper daily returns"),
        column("slippage_bps", pa.float64(), doc="(realized − cost model) / traded, bps"),
        column("pretrade_breaches", pa.int64(), doc="orders rejected by pre-trade in the stage"),
        column("undecided_sessions", pa.int64(), doc="sessions whose optimizer found no weights"),
        column("verdict", pa.string(), doc="pass | fail | pending (gates events)"),
        column("failed_gates", pa.string(), doc="comma-separated gate names"),
        column("actor", pa.string(), False, "gates (automatic) or a person"),
        column("reason", pa.string(), False),
        column("detail", pa.string(), False, "JSON: gate bounds, canary capital, champion"),
        column("recorded_at", UTC_TS, False, "when the step was taken (UTC)"),
    ),
    valid_time_meaning="session the step was taken on (effective from the next session)",
)

__all__ = ["ROLLOUT_EVENTS"]
