"""The seams every stage is written against: a :class:`Store` and a :class:`StageContext`.

A stage is ``stage(ctx) -> summary``: it reads only through ``ctx.store.as_of`` (point in
time, as of the session's cutoff) and writes only its declared tables through
``ctx.store.write``. :class:`~pipelines.lake.store.Lake` is the Delta implementation of
:class:`Store`; a backtest may pass a store that buffers writes in memory and flushes them
to the lake every few sessions. Nothing passes between stages through local files, so a
worker with an empty working directory, given the lake URI and the session, runs any stage.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import pyarrow as pa
import pyarrow.dataset as ds

if TYPE_CHECKING:
    from pipelines.lake.bitemporal import ValidRange
    from pipelines.lake.conform import FrameLike
    from pipelines.lake.store import WriteResult


class Store(Protocol):
    """Bitemporal tables: idempotent appends and point-in-time reads."""

    def write(
        self,
        name: str,
        data: FrameLike,
        *,
        known_at: dt.datetime | None = None,
        valid_date: dt.date | None = None,
        batch_id: str | None = None,
    ) -> WriteResult:
        """Append ``data`` to table ``name`` as one idempotent batch (same batch id ⇒ no-op)."""
        ...

    def as_of(
        self,
        name: str,
        *,
        known_at: dt.datetime,
        valid_at: dt.date | ValidRange | tuple[dt.date, dt.date],
        columns: list[str] | None = None,
        filter: ds.Expression | None = None,
    ) -> pa.Table:
        """What was knowable at ``known_at`` about ``valid_at`` (a date or a range)."""
        ...

    def has_batch(self, name: str, batch_id: str) -> bool:
        """Whether batch ``batch_id`` is committed to table ``name``."""
        ...


@runtime_checkable
class DayKeys(Protocol):
    """A store that can list the keys of a day's rows without an as-of read."""

    def day_keys(self, name: str, day: dt.date) -> set[tuple[str, ...]] | None:
        """The keys, as tuples of strings, of point-in-time table ``name``'s rows dated
        ``day`` as known now (what a latest as-of read of the key columns gives), or None
        when the store cannot tell without that read."""
        ...


class StageContext(Protocol):
    """What every stage receives: where to read and write, which session, what time it is.

    Implementations add what their stages need (the daily loop's context carries the
    portfolio's config and broker); a stage asks for no more than it uses.
    """

    @property
    def store(self) -> Store: ...

    @property
    def day(self) -> dt.date: ...

    def now(self) -> dt.datetime:
        """The knowledge time the stage stamps its outputs with (default: the cutoff)."""
        ...
