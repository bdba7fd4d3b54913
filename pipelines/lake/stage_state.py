"""Working state one stage hands to the next, kept in the lake (table ``stage_state``).

A daily stage's heavy output (the scores, the risk model, the target portfolio, the book
the optimizer saw, the pre-trade preview, the PM's decision) is what the next stage —
possibly another worker with an empty working directory — and the PM report read. It is
stored as one row per (portfolio, session, name): the value pickled into ``payload``,
``valid_date`` the session, ``known_at`` the writing stage's knowledge time.

Writes are idempotent: the batch id is ``stage_state:<portfolio>:<session>:<name>:v<n>:<hash>``
(``n`` the version, ``hash`` the payload's), so re-running a stage that produces the same
value writes nothing, and a different value becomes version ``n+1`` — the latest version
is the one read, as a file overwrite was before.

The payload is a pickle: only the lake's own writers put it there, and only this
codebase's stages read it back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import pickle
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.errors import AlphaFactoryError
from pipelines.lake.interface import StageContext, Store
from pipelines.timeline import ALL_DATES, LATEST

TABLE = "stage_state"


class MissingStageStateError(AlphaFactoryError, LookupError):
    """A stage's input has not been produced (its upstream stage did not run)."""


class StageState:
    """The ``stage_state`` rows of one portfolio and session.

    ``clock`` stamps what :meth:`put` writes (the stage's knowledge time). The session's
    values are read from the lake once, on first use, and remembered (as bytes) together
    with what this object writes, for its lifetime: one run of several stages reads the
    state once.
    """

    def __init__(
        self,
        store: Store,
        portfolio_id: str,
        day: dt.date,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.store = store
        self.portfolio_id = portfolio_id
        self.day = day
        self.clock = clock
        self._seen: dict[str, tuple[int, str, bytes]] | None = None

    @classmethod
    def of(cls, ctx: StageContext, portfolio_id: str) -> StageState:
        """The state of ``ctx``'s session for ``portfolio_id``, stamped with ``ctx.now()``."""
        return cls(ctx.store, portfolio_id, ctx.day, clock=ctx.now)

    def _latest(self, name: str) -> tuple[int, str, bytes] | None:
        if self._seen is None:
            # One read for every name of the portfolio and session.
            flt = pc.field("portfolio_id") == self.portfolio_id
            rows = self.store.as_of(TABLE, known_at=LATEST, valid_at=self.day, filter=flt)
            self._seen = {
                str(row["name"]): (int(row["version"]), str(row["content_hash"]), row["payload"])
                for row in rows.select(["name", "version", "content_hash", "payload"]).to_pylist()
            }
        return self._seen.get(name)

    def put(self, name: str, value: Any) -> bool:
        """Store ``value`` as ``name``; False when the latest version already holds it."""
        if self.clock is None:
            raise MissingStageStateError(f"{TABLE}: a write needs the stage's clock")
        payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        digest = hashlib.sha256(payload).hexdigest()[:24]
        latest = self._latest(name)
        if latest is not None and latest[1] == digest:
            return False
        version = 1 if latest is None else latest[0] + 1
        # One row built in Arrow (as a one-row pandas frame converts: string, int64,
        # binary); the write casts it to the table's types.
        frame = pa.table(
            {
                "portfolio_id": [self.portfolio_id],
                "name": [name],
                "version": pa.array([version], pa.int64()),
                "content_hash": [digest],
                "payload": pa.array([payload], pa.binary()),
            }
        )
        self.store.write(
            TABLE,
            frame,
            known_at=self.clock(),
            valid_date=self.day,
            batch_id=f"{TABLE}:{self.portfolio_id}:{self.day}:{name}:v{version}:{digest}",
        )
        if self._seen is not None:
            self._seen[name] = (version, digest, payload)
        return True

    def has(self, name: str) -> bool:
        return self._latest(name) is not None

    def find(self, name: str) -> Any:
        """The stored ``name``, or None when absent."""
        latest = self._latest(name)
        return None if latest is None else pickle.loads(latest[2])

    def get(self, name: str) -> Any:
        """The stored ``name``; :class:`MissingStageStateError` naming it when absent."""
        latest = self._latest(name)
        if latest is None:
            raise MissingStageStateError(
                f"{self.portfolio_id} {self.day}: no '{name}' in the lake's {TABLE} "
                "(did its stage run?)"
            )
        return pickle.loads(latest[2])


def history(store: Store, portfolio_id: str, name: str) -> list[tuple[dt.date, Any]]:
    """Every session's latest stored ``name`` for ``portfolio_id`` (as known now), oldest
    session first, from one read of the table."""
    flt = (pc.field("portfolio_id") == portfolio_id) & (pc.field("name") == name)
    rows = store.as_of(
        TABLE, known_at=LATEST, valid_at=ALL_DATES, columns=["name", "payload"], filter=flt
    )
    days = rows.column("valid_date").to_pylist()
    payloads = rows.column("payload").to_pylist()
    return [
        (day, pickle.loads(payload))
        for day, payload in sorted(zip(days, payloads, strict=True), key=lambda r: r[0])
    ]
