"""Risk's lake tables (written by :mod:`pipelines.risk`).

``kill_switch`` is the one place the kill switch lives: an append-only log of every
engage and release, each with who, why and when. Its state is the latest row; every
process reads the same state whatever its working directory (see
:mod:`pipelines.risk.kill_switch`).
"""

from __future__ import annotations

import pyarrow as pa

from pipelines.lake.spec import UTC_TS, TableSpec, column

KILL_SWITCH = TableSpec(
    name="kill_switch",
    description="Append-only audit of the kill switch: every engage and release, by whom, why, when.",
    key=("event_id",),
    fields=(
        column("event_id", pa.string(), False, "unique per engage/release"),
        column("action", pa.string(), False, "engage | release"),
        column("engaged", pa.bool_(), False, "the switch's state after this event"),
        column("actor", pa.string(), False, "who (operator user name or process)"),
        column("reason", pa.string(), False, "why, as the operator gave it"),
        column("at", UTC_TS, False, "when (UTC)"),
    ),
    valid_time_meaning="UTC date of the event",
)

__all__ = ["KILL_SWITCH"]
