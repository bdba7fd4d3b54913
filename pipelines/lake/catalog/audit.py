"""The leak audit's lake table (written by :mod:`pipelines.audit`).

``leak_audits`` holds one row per audit run, stage output table and comparison ("lake":
the rows the lake holds for each session; "hindsight": the research history read as known
now): identical, or the first differing key and the input fact that caused it.
``alphafactory status`` shows the last run's verdict in one line.
"""

from __future__ import annotations

import pyarrow as pa

from pipelines.lake.spec import UTC_TS, TableSpec, column

LEAK_AUDITS = TableSpec(
    name="leak_audits",
    description="Leak audits: per run, stage table and comparison, identical or the first differing key and its cause.",
    key=("audit_id", "stage", "table_name", "against"),
    fields=(
        column("audit_id", pa.string(), False, "L + hash of the range and the audit time"),
        column("stage", pa.string(), False, "research stage: universe, features, labels"),
        column("table_name", pa.string(), False, "the stage's output table"),
        column("against", pa.string(), False, "lake | hindsight"),
        column("start", pa.date32(), False, "first audited session"),
        column("end", pa.date32(), False, "last audited session"),
        column("sessions", pa.int64(), False, "sessions compared"),
        column("differing_sessions", pa.int64(), False),
        column("verdict", pa.string(), False, "identical | leak | not_compared"),
        column("first_key", pa.string(), doc="JSON of the first differing key"),
        column("cause_kind", pa.string(), doc="backdated | late_fact | reads_ahead | unexplained"),
        column("cause", pa.string(), doc="the input fact (table, key, known_at, loaded) or why"),
        column("detail", pa.string(), False, "the report's line"),
        column("audited_at", UTC_TS, False, "when the audit ran (UTC)"),
    ),
    valid_time_meaning="last audited session",
)

__all__ = ["LEAK_AUDITS"]
