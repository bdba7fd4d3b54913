"""The kill switch: one central, audited state in the lake (table ``kill_switch``).

Every engage and every release is a new row (who, why, when) in the append-only table
declared in :mod:`pipelines.lake.catalog.risk`; the state is the latest row. Pre-trade
(:func:`pipelines.risk.pretrade.check_orders`) and execution read it from the lake, so it
holds for every process and worker whatever its working directory.

It fails closed: when the state cannot be read, :func:`blocking_reason` says so and
nothing is sent. Engaging it also cancels every open order at the broker; that part lives
in :func:`pipelines.execution.execute.cancel_open_orders` (execution is above risk).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from pipelines.errors import AlphaFactoryError
from pipelines.lake.interface import Store
from pipelines.timeline import ALL_DATES, LATEST

TABLE = "kill_switch"
ENGAGE = "engage"
RELEASE = "release"


class KillSwitchError(AlphaFactoryError, ValueError):
    """A kill-switch command is not usable (no reason given, unknown action)."""


class KillSwitchUnreadableError(AlphaFactoryError, RuntimeError):
    """The kill switch's state cannot be read; callers fail closed (nothing is sent)."""


@dataclass(frozen=True)
class KillSwitchState:
    """The switch as of its latest event (``at`` None: never engaged)."""

    engaged: bool
    actor: str | None = None
    reason: str | None = None
    at: dt.datetime | None = None

    def line(self) -> str:
        """One line for operators and audit rows."""
        if self.at is None:
            return "kill switch released (never engaged)"
        when = self.at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        word = "ENGAGED" if self.engaged else "released"
        return f"kill switch {word} since {when} by {self.actor}: {self.reason}"


def read_state(store: Store) -> KillSwitchState:
    """The current state; :class:`KillSwitchUnreadableError` if the lake cannot answer."""
    try:
        rows = store.as_of(TABLE, known_at=LATEST, valid_at=ALL_DATES).to_pylist()
    except Exception as exc:  # any failure to read means: we do not know, so stop
        raise KillSwitchUnreadableError(
            f"kill switch state unreadable ({type(exc).__name__}: {exc})"
        ) from exc
    if not rows:
        return KillSwitchState(engaged=False)
    last = max(rows, key=lambda r: (r["at"], r["known_at"], r["event_id"]))
    return KillSwitchState(
        engaged=bool(last["engaged"]),
        actor=str(last["actor"]),
        reason=str(last["reason"]),
        at=last["at"],
    )


def blocking_reason(store: Store) -> str | None:
    """Why nothing may be sent now (engaged, or state unreadable), or None. Never raises."""
    try:
        state = read_state(store)
    except KillSwitchUnreadableError as exc:
        return f"{exc}; failing closed: nothing is sent"
    return state.line() if state.engaged else None


def _record(
    store: Store,
    action: str,
    *,
    reason: str,
    actor: str,
    clock: Callable[[], dt.datetime] | None = None,
) -> KillSwitchState:
    if not reason or not reason.strip():
        raise KillSwitchError(f"kill switch {action}: a reason is required (--reason)")
    if not actor or not actor.strip():
        raise KillSwitchError(f"kill switch {action}: an actor is required")
    at = (clock or (lambda: dt.datetime.now(dt.UTC)))()
    if at.tzinfo is None:
        raise KillSwitchError(f"kill switch {action}: the clock gave a naive time {at}")
    at = at.astimezone(dt.UTC)
    engaged = action == ENGAGE
    event_id = f"{action}:{at.isoformat()}:{uuid.uuid4().hex[:8]}"
    row = {
        "event_id": event_id,
        "action": action,
        "engaged": engaged,
        "actor": actor.strip(),
        "reason": reason.strip(),
        "at": at,
    }
    store.write(
        TABLE,
        pd.DataFrame([row]),
        known_at=at,
        valid_date=at.date(),
        batch_id=f"{TABLE}:{event_id}",
    )
    return KillSwitchState(engaged=engaged, actor=actor.strip(), reason=reason.strip(), at=at)


def engage(
    store: Store, *, reason: str, actor: str, clock: Callable[[], dt.datetime] | None = None
) -> KillSwitchState:
    """Engage the switch (audited): from now on no order is sent."""
    return _record(store, ENGAGE, reason=reason, actor=actor, clock=clock)


def release(
    store: Store, *, reason: str, actor: str, clock: Callable[[], dt.datetime] | None = None
) -> KillSwitchState:
    """Release the switch (audited): orders may be sent again (a re-run sends the blocked)."""
    return _record(store, RELEASE, reason=reason, actor=actor, clock=clock)


__all__ = [
    "ENGAGE",
    "RELEASE",
    "TABLE",
    "KillSwitchError",
    "KillSwitchState",
    "KillSwitchUnreadableError",
    "blocking_reason",
    "engage",
    "read_state",
    "release",
]
