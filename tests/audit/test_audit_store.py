"""AuditLake: reads capped at one instant (as-of reads and the raw datasets the panel's
DuckDB query scans alike), writes kept in memory, nothing committed to the lake."""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines.audit.store import AuditLake, AuditWriteError
from pipelines.lake import Lake
from pipelines.timeline import LATEST
from tests.lake.helpers import prices, ts

pytestmark = pytest.mark.unit

DAY = dt.date(2024, 1, 2)


def _closes(table: object) -> list[float]:
    return sorted(table.column("close").to_pylist())  # type: ignore[attr-defined]


def test_reads_are_capped_and_writes_stay_in_memory(lake: Lake) -> None:
    lake.write("prices", prices(2, ["A"], close=10.0), known_at=ts(2))
    lake.write("prices", prices(2, ["A"], close=11.0), known_at=ts(3))  # a later correction
    versions = len(lake.versions("prices"))

    view = AuditLake(lake, ts(2, 23))
    assert _closes(view.as_of("prices", known_at=LATEST, valid_at=DAY)) == [10.0]
    assert _closes(view.dataset("prices").to_table()) == [10.0]
    everything = AuditLake(lake, None)
    assert _closes(everything.as_of("prices", known_at=LATEST, valid_at=DAY)) == [11.0]

    written = view.write("prices", prices(2, ["B"], close=5.0), known_at=ts(2, 22, 30))
    assert written.written and view.pending_rows() == 1
    assert _closes(view.as_of("prices", known_at=ts(2, 23), valid_at=DAY)) == [5.0, 10.0]
    # the lake never saw it
    assert len(lake.versions("prices")) == versions
    assert _closes(lake.as_of("prices", known_at=LATEST, valid_at=DAY)) == [11.0]
    with pytest.raises(AuditWriteError):
        view.buffer.flush()
    with pytest.raises(AuditWriteError):
        view.commit_prepared("prices", lake.dataset("prices").to_table(), ["x"])
    assert len(lake.versions("prices")) == versions


def test_a_table_never_written_is_not_created(lake: Lake) -> None:
    view = AuditLake(lake, ts(2))
    assert view.table("universe", create=True) is None
    assert lake.table("universe") is None
