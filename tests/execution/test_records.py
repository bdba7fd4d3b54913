"""The execution records' Arrow paths write and read exactly what their pandas paths did:
same rows, same batch ids, same frames."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from pipelines.execution import records
from pipelines.lake import get_table
from pipelines.lake.conform import FrameLike, conform
from pipelines.lake.store import WriteResult

pytestmark = pytest.mark.unit

DAY = dt.date(2024, 3, 5)
CLOCK = dt.datetime(2024, 3, 5, 21, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))


class Recorder:
    """A store that records what is written (conformed, as the lake checks it) and holds
    ``stored`` as the rows of every read."""

    def __init__(self, stored: pa.Table | None = None) -> None:
        self.stored = stored
        self.writes: list[tuple[str, str, pa.Table]] = []

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
        assert batch_id is not None
        self.writes.append((name, batch_id, tbl))
        return WriteResult(name, batch_id, tbl.num_rows, True, None)

    def as_of(self, name: str, **_: Any) -> pa.Table:
        if self.stored is not None:
            return self.stored
        return get_table(name).arrow_schema().empty_table()

    def has_batch(self, name: str, batch_id: str) -> bool:
        return False


def _frame(table: str, n: int, *, keys: list[str] | None = None) -> pd.DataFrame:
    """``n`` rows of ``table``'s business columns (keys repeat when ``keys`` is short)."""
    spec = get_table(table)
    out: dict[str, list[Any]] = {}
    for f in spec.fields:
        if f.name in spec.key and keys is not None:
            out[f.name] = [keys[i % len(keys)] for i in range(n)]
        elif pa.types.is_string(f.type):
            out[f.name] = [f"{f.name}-{i}" for i in range(n)]
        elif pa.types.is_floating(f.type):
            out[f.name] = [i * 1.25 for i in range(n)]
        elif pa.types.is_integer(f.type):
            out[f.name] = list(range(n))
        elif pa.types.is_boolean(f.type):
            out[f.name] = [i % 2 == 0 for i in range(n)]
        elif pa.types.is_date(f.type):
            out[f.name] = [DAY] * n
        elif pa.types.is_timestamp(f.type):
            out[f.name] = [CLOCK] * n
        else:
            out[f.name] = [None] * n
    return pd.DataFrame(out)


@pytest.mark.parametrize("table", ["orders", "fills", "positions", "execution_audit"])
def test_append_new_writes_what_the_frame_path_wrote(table: str) -> None:
    spec = get_table(table)
    rows = _frame(table, 7, keys=["k1", "k2", "k3", "k2", "k4", "k5", "k1"])
    stored = conform(spec, _frame(table, 1, keys=["k4"]), known_at=CLOCK, valid_date=DAY)
    for existing in (None, _frame(table, 1, keys=["k5"])):
        for frame in (rows, rows.assign(known_at=CLOCK), rows.assign(valid_date=DAY)):
            new, old = Recorder(stored), Recorder(stored)
            args = (table, frame, DAY)
            n_new = records.append_new(new, *args, known_at=CLOCK, existing=existing)
            n_old = records._append_frame(old, *args, known_at=CLOCK, existing=existing)
            assert n_new == n_old > 0
            assert [(b, t.to_pylist()) for _, b, t in new.writes] == [
                (b, t.to_pylist()) for _, b, t in old.writes
            ]
            assert new.writes[0][2].schema == old.writes[0][2].schema


def test_write_audit_writes_what_audit_rows_and_append_new_wrote() -> None:
    events: list[dict[str, Any]] = [
        {
            "event": "sent",
            "client_order_id": "o1",
            "security_id": "S1",
            "detail": {"b": 1, "a": 2.5},
        },
        {
            "event": "sent",
            "client_order_id": "o1",
            "security_id": "S1",
            "detail": {"b": 1, "a": 2.5},
        },
        {"event": "note", "detail": {"when": DAY}},
        {"event": "named", "event_id": "fixed"},
    ]
    new, old = Recorder(), Recorder()
    n = records.write_audit(new, "P", DAY, "execute", events, known_at=CLOCK)
    frame = records.audit_rows("P", "execute", events)
    assert n == records._append_frame(old, "execution_audit", frame, DAY, known_at=CLOCK) == 3
    assert [(b, t.to_pylist()) for _, b, t in new.writes] == [
        (b, t.to_pylist()) for _, b, t in old.writes
    ]


def test_to_json_is_json_dumps() -> None:
    value = {"z": [1, 2.5, None], "a": {"d": DAY, "s": "é"}, "n": float("nan")}
    expected = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    assert records.to_json(value) == expected


def _old_read_day(data: pa.Table, table: str) -> pd.DataFrame:
    frame = data.to_pandas()
    if frame.empty:
        return records._empty(table)
    frame["valid_date"] = pd.to_datetime(frame["valid_date"]).dt.date
    keep = [f.name for f in get_table(table).input_fields]
    return frame[keep].reset_index(drop=True)


@pytest.mark.parametrize("table", ["orders", "positions", "execution_audit"])
def test_read_day_frames_are_the_old_conversions(table: str) -> None:
    spec = get_table(table)
    full = conform(spec, _frame(table, 4), known_at=CLOCK, valid_date=DAY)
    n = full.num_rows
    stored = full.append_column("_deleted", pa.array([False] * n)).append_column(
        "_batch_id", pa.array(["b"] * n)
    )
    for data in (stored, stored.slice(0, 0)):
        got = records.read_day(Recorder(data), table, DAY)  # type: ignore[arg-type]
        pd.testing.assert_frame_equal(got, _old_read_day(data, table))
    empty = records.read_day(Recorder(stored.slice(0, 0)), table, DAY)  # type: ignore[arg-type]
    empty["extra"] = 1  # a caller's change to its frame is its own
    assert "extra" not in records._empty(table).columns


def test_read_day_of_the_same_answer_again_is_a_fresh_equal_frame() -> None:
    spec = get_table("orders")
    data = conform(spec, _frame("orders", 3), known_at=CLOCK, valid_date=DAY)
    data = data.append_column("_deleted", pa.array([False] * 3))
    store = Recorder(data)
    first = records.read_day(store, "orders", DAY)  # type: ignore[arg-type]
    first.loc[0, "client_order_id"] = "changed"
    first["extra"] = 1
    again = records.read_day(store, "orders", DAY)  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(again, _old_read_day(data, "orders"))
    store.stored = data.slice(1)  # another answer: converted anew
    assert len(records.read_day(store, "orders", DAY)) == 2  # type: ignore[arg-type]
