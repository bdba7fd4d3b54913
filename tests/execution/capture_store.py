"""A store with nothing stored that records what each write would store (conformed): the
Arrow write paths are compared with the pandas forms they replaced on what reaches it."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from pipelines.lake import get_table
from pipelines.lake.conform import FrameLike, conform
from pipelines.lake.store import WriteResult


class CaptureStore:
    """Answers every read with an empty table; keeps ``(table, batch id, rows)`` per write."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, str | None, pa.Table]] = []

    def as_of(self, name: str, **_: object) -> pa.Table:
        return get_table(name).arrow_schema().empty_table()

    def write(
        self,
        name: str,
        data: FrameLike,
        *,
        known_at: dt.datetime | None = None,
        valid_date: dt.date | None = None,
        batch_id: str | None = None,
    ) -> WriteResult:
        tbl = conform(get_table(name), data, known_at=known_at, valid_date=valid_date)
        self.writes.append((name, batch_id, tbl))
        return WriteResult(name, batch_id or "", tbl.num_rows, True, None)
