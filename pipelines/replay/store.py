"""The lake as a past session's decision saw it, with writes that never reach the lake.

:class:`ReplayStore` is a :class:`~pipelines.lake.interface.Store` over a :class:`Lake`
for one session ``D`` (one portfolio):

* every read is capped at ``D``'s decision cutoff (a stage asking for ``LATEST`` gets
  what was known by the cutoff), and sees only the rows committed before the session's
  own run began (``before``: the ingestion time of its first ``stage_state`` row), so the
  session's stored outputs, and corrections loaded later with a backdated knowledge time,
  are not inputs of its replay;
* writes are checked and given their system columns exactly as :meth:`Lake.write` does,
  then kept in memory (:meth:`written` reads them back) and dropped with the object: the
  store holds no method that commits to the lake.

Reads are resolved by the lake's one as-of (:func:`pipelines.lake.bitemporal.resolve_as_of`)
over the lake's visible rows plus the buffered ones, as
:class:`~pipelines.lake.buffered.BufferedStore` does.
"""

from __future__ import annotations

import datetime as dt
import pickle

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from pipelines.lake import bitemporal
from pipelines.lake.catalog import get_table
from pipelines.lake.conform import FrameLike, conform
from pipelines.lake.store import Lake, WriteResult, content_hash, with_system_columns

_TS = pa.timestamp("us", tz="UTC")


class ReplayStore:
    """Reads capped at ``cutoff`` and at rows ingested before ``before``; writes in memory."""

    def __init__(self, lake: Lake, cutoff: dt.datetime, before: dt.datetime | None) -> None:
        self.lake = lake
        self.cutoff = bitemporal.utc(cutoff)
        self.before = None if before is None else bitemporal.utc(before)
        self._pending: dict[str, list[pa.Table]] = {}
        self._pending_ids: dict[str, set[str]] = {}
        # Every batch the stages asked to write, kept or not (a batch id the lake already
        # held is a no-op, as in the lake, but it is still what the session decided).
        self._asked: dict[str, list[pa.Table]] = {}
        self._answers: dict[str, dict[tuple[object, ...], pa.Table]] = {}
        self._before_ids: dict[str, set[str]] = {}

    def __repr__(self) -> str:
        return f"ReplayStore({self.lake!r}, cutoff={self.cutoff.isoformat()})"

    # ---- writes (memory only) ------------------------------------------------------------

    def write(
        self,
        name: str,
        data: FrameLike,
        *,
        known_at: dt.datetime | None = None,
        valid_date: dt.date | None = None,
        batch_id: str | None = None,
    ) -> WriteResult:
        """Keep ``data`` as one batch of ``name`` in memory (the lake's checks and batch id;
        a batch already kept, or committed before the session, writes nothing)."""
        spec = get_table(name)
        tbl = conform(spec, data, known_at=known_at, valid_date=valid_date)
        bid = batch_id or f"{name}:{content_hash(tbl)}"
        ids = pa.chunked_array([pa.repeat(pa.scalar(bid), tbl.num_rows)], pa.string())
        rows = with_system_columns(spec, tbl, ids, False)
        if bid not in self._pending_ids.get(name, ()):
            self._asked.setdefault(name, []).append(rows)
        if self.has_batch(name, bid):
            return WriteResult(name, bid, tbl.num_rows, False, None)
        self._pending.setdefault(name, []).append(rows)
        self._pending_ids.setdefault(name, set()).add(bid)
        self._answers.pop(name, None)
        return WriteResult(name, bid, tbl.num_rows, True, None)

    def has_batch(self, name: str, batch_id: str) -> bool:
        """Whether ``batch_id`` is kept here, or was committed to the lake before the session."""
        if batch_id in self._pending_ids.get(name, ()):
            return True
        if not self.lake.has_batch(name, batch_id, refresh=False):
            return False
        if self.before is None:
            return True
        return batch_id in self._committed_before(name)

    def _committed_before(self, name: str) -> set[str]:
        """The table's batch ids with rows committed before the session's run (one scan)."""
        found = self._before_ids.get(name)
        if found is None:
            rows = self.lake.dataset(name, refresh=False).to_table(
                columns=["_batch_id"],
                filter=pc.field("_ingested_at") < pa.scalar(self.before, _TS),
            )
            found = self._before_ids[name] = set(pc.unique(rows.column("_batch_id")).to_pylist())
        return found

    def written(self) -> WrittenRows:
        """A read-only view of every batch the stages wrote through this store (kept, or
        a no-op because the lake held its batch id already), and nothing else."""
        return WrittenRows(self)

    # ---- reads ---------------------------------------------------------------------------

    def as_of(
        self,
        name: str,
        *,
        known_at: dt.datetime,
        valid_at: dt.date | bitemporal.ValidRange | tuple[dt.date, dt.date],
        columns: list[str] | None = None,
        filter: ds.Expression | None = None,
    ) -> pa.Table:
        """What the session could know at its cutoff (at most ``known_at``) about ``valid_at``."""
        known = min(bitemporal.utc(known_at), self.cutoff)
        rng = bitemporal.as_valid_range(valid_at)
        key = (
            known,
            rng,
            None if columns is None else tuple(columns),
            None if filter is None else pickle.dumps(filter),
        )
        answers = self._answers.setdefault(name, {})
        answer = answers.get(key)
        if answer is None:
            answer = answers[key] = self._resolve(name, known, rng, columns, filter)
        return answer

    def _resolve(
        self,
        name: str,
        known_at: dt.datetime,
        rng: bitemporal.ValidRange,
        columns: list[str] | None,
        filter: ds.Expression | None,
    ) -> pa.Table:
        spec = get_table(name)
        data = self.lake.candidates(name, known_at, rng, columns, filter, refresh=False)
        if self.before is not None:
            data = data.filter(pc.field("_ingested_at") < pa.scalar(self.before, _TS))
        pending = self._pending.get(name)
        if pending:
            expr, _ = bitemporal.candidate_filter(spec, known_at, rng)
            if filter is not None:
                expr = expr & filter
            extra = pa.concat_tables(pending).filter(expr)
            extra = extra.select(data.schema.names).cast(data.schema)
            data = pa.concat_tables([data, extra])
        return bitemporal.resolve_as_of(spec, data, rng)


class WrittenRows:
    """The rows a :class:`ReplayStore` kept, read as the lake would answer for them alone
    (a :class:`~pipelines.lake.interface.Store` that refuses writes)."""

    def __init__(self, store: ReplayStore) -> None:
        self._store = store

    def write(
        self,
        name: str,
        data: FrameLike,
        *,
        known_at: dt.datetime | None = None,
        valid_date: dt.date | None = None,
        batch_id: str | None = None,
    ) -> WriteResult:
        raise TypeError("a replay's written rows are read-only")

    def has_batch(self, name: str, batch_id: str) -> bool:
        return batch_id in self._store._pending_ids.get(name, ())

    def as_of(
        self,
        name: str,
        *,
        known_at: dt.datetime,
        valid_at: dt.date | bitemporal.ValidRange | tuple[dt.date, dt.date],
        columns: list[str] | None = None,
        filter: ds.Expression | None = None,
    ) -> pa.Table:
        spec = get_table(name)
        rng = bitemporal.as_valid_range(valid_at)
        empty = spec.arrow_schema().empty_table()
        asked = self._store._asked.get(name)
        data = pa.concat_tables(asked) if asked else empty
        expr, _ = bitemporal.candidate_filter(spec, known_at, rng)
        if filter is not None:
            expr = expr & filter
        data = data.filter(expr)
        scan = bitemporal.scan_columns(spec, columns)
        if scan is not None:
            data = data.select(scan)
        return bitemporal.resolve_as_of(spec, data, rng)


__all__ = ["ReplayStore", "WrittenRows"]
