"""The buffered store: same checks, batch ids and as-of answers as the lake, one commit per
table on flush, and the flushed rows answer exactly as they did buffered."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest

from pipelines.lake import Lake, LakeSchemaError
from pipelines.lake.buffered import BufferedStore
from tests.lake.helpers import master, prices, ts

pytestmark = pytest.mark.unit


# (table, frame, known_at): prices restated and tied on known_at, a security-master change
# announced before it takes effect and a correction learned later.
WRITES: list[tuple[str, pd.DataFrame, dt.datetime]] = [
    ("prices", prices(2, ["A", "B"], close=1.0), ts(2)),
    ("prices", prices(3, ["A", "B"], close=2.0), ts(3)),
    ("prices", prices(2, ["A"], close=1.5), ts(4)),  # restatement
    ("prices", prices(3, ["B"], close=2.5), ts(3)),  # tie on known_at: later ingestion wins
    ("security_master", master([("A", "OLD", "Tech", dt.date(2024, 1, 1))]), ts(1)),
    ("security_master", master([("A", "NEW", "Tech", dt.date(2024, 1, 10))]), ts(5)),
    ("security_master", master([("A", "OLD", "Energy", dt.date(2024, 1, 1))]), ts(20)),
]

READS: list[tuple[str, dt.datetime, object]] = [
    ("prices", ts(2), dt.date(2024, 1, 2)),
    ("prices", ts(3, 23), dt.date(2024, 1, 3)),
    ("prices", ts(5), (dt.date(2024, 1, 1), dt.date(2024, 1, 5))),
    ("security_master", ts(4), dt.date(2024, 1, 15)),
    ("security_master", ts(6), (dt.date(2024, 1, 5), dt.date(2024, 1, 12))),
    ("security_master", ts(21), dt.date(2024, 1, 5)),
]


def _answers(store: Lake | BufferedStore) -> list[pa.Table]:
    out = [store.as_of(t, known_at=k, valid_at=v) for t, k, v in READS]  # type: ignore[arg-type]
    out.append(
        store.as_of(
            "prices",
            known_at=ts(5),
            valid_at=dt.date(2024, 1, 3),
            columns=["close"],
            filter=pc.field("security_id") == "B",
        )
    )
    return [t.drop_columns(["_ingested_at"]) for t in out]


def _same(a: list[pa.Table], b: list[pa.Table]) -> None:
    for x, y in zip(a, b, strict=True):
        assert x.to_pylist() == y.to_pylist()


def test_reads_answer_as_the_lake_before_and_after_flush(tmp_path: Path) -> None:
    plain = Lake(str(tmp_path / "plain"))
    base = Lake(str(tmp_path / "buffered"))
    base.write(*WRITES[0][:2], known_at=WRITES[0][2])  # some history already committed
    plain.write(*WRITES[0][:2], known_at=WRITES[0][2])
    store = BufferedStore(base, cached_tables=["security_master"])
    for name, frame, known in WRITES[1:]:
        plain.write(name, frame, known_at=known)
        store.write(name, frame, known_at=known)
    expected = _answers(plain)
    _same(_answers(store), expected)
    assert base.status("security_master").exists is False  # nothing committed yet
    version = base.status("prices").version
    assert version is not None
    store.flush()
    assert base.status("prices").version == version + 1  # one commit per table
    _same(_answers(store), expected)
    _same(_answers(base), expected)


def test_batch_ids_are_the_lakes_and_idempotent_across_flush(tmp_path: Path) -> None:
    base = Lake(str(tmp_path / "lake"))
    store = BufferedStore(base)
    first = store.write("prices", prices(2, ["A"]), known_at=ts(2))
    assert first.written and store.has_batch("prices", first.batch_id)
    assert not store.write("prices", prices(2, ["A"]), known_at=ts(2)).written
    named = store.write("prices", prices(3, ["A"]), known_at=ts(3), batch_id="file-1")
    assert not store.write(
        "prices", prices(3, ["A"], close=9.0), known_at=ts(3), batch_id="file-1"
    ).written
    assert store.pending_rows() == 2
    assert store.flush() == {"prices": 2}
    assert base.has_batch("prices", first.batch_id) and base.has_batch("prices", "file-1")
    assert not store.write("prices", prices(2, ["A"]), known_at=ts(2)).written
    assert store.flush() == {}
    assert base.status("prices").rows == 2
    # The same content through the lake is the same batch: nothing new.
    assert not base.write("prices", prices(2, ["A"]), known_at=ts(2)).written
    assert named.batch_id == "file-1"


def test_a_bad_frame_fails_at_once(tmp_path: Path) -> None:
    store = BufferedStore(Lake(str(tmp_path / "lake")))
    with pytest.raises(LakeSchemaError):
        store.write("prices", prices(2, ["A"]).drop(columns=["close"]), known_at=ts(2))
    with pytest.raises(LakeSchemaError):
        store.write("prices", prices(2, ["A"]), known_at=dt.datetime(2024, 1, 2))  # naive
    assert store.pending_rows() == 0


def test_a_write_after_a_read_is_seen_by_the_next_read(tmp_path: Path) -> None:
    store = BufferedStore(Lake(str(tmp_path / "lake")))
    store.write("prices", prices(2, ["A"], close=1.0), known_at=ts(2))
    read = {"known_at": ts(9), "valid_at": dt.date(2024, 1, 2)}
    assert store.as_of("prices", **read).column("close").to_pylist() == [1.0]  # type: ignore[arg-type]
    store.write("prices", prices(2, ["A"], close=2.0), known_at=ts(3))
    assert store.as_of("prices", **read).column("close").to_pylist() == [2.0]  # type: ignore[arg-type]


def test_reads_with_long_filters_that_differ_are_not_confused(tmp_path: Path) -> None:
    """Pyarrow prints a long ``isin`` abbreviated: two filters can print alike."""
    ids = [f"S{i:04d}" for i in range(400)]
    store = BufferedStore(Lake(str(tmp_path / "lake")))
    store.write("prices", prices(2, ids), known_at=ts(2))
    other = list(ids)
    other[200] = "nobody"
    read = {"known_at": ts(9), "valid_at": dt.date(2024, 1, 2)}
    first = store.as_of("prices", filter=pc.field("security_id").isin(ids), **read)  # type: ignore[arg-type]
    second = store.as_of("prices", filter=pc.field("security_id").isin(other), **read)  # type: ignore[arg-type]
    assert (first.num_rows, second.num_rows) == (400, 399)


def test_a_new_buffer_finds_the_batches_an_earlier_run_committed(tmp_path: Path) -> None:
    """The lake's log is skipped only for a batch dated where no file of the table has
    rows; a batch committed before the buffer opened the table (a resumed run) is found."""
    lake = Lake(str(tmp_path / "lake"))
    first = BufferedStore(lake)
    done = first.write("prices", prices(2, ["A", "B"]), known_at=ts(2))
    empty = first.write("prices", prices(3, ["A"]).iloc[:0], known_at=ts(3), batch_id="none")
    first.flush()
    again = BufferedStore(Lake(str(tmp_path / "lake")))
    assert not again.write("prices", prices(2, ["A", "B"]), known_at=ts(2)).written
    assert done.batch_id in again._committed["prices"]
    assert not again.write(
        "prices", prices(3, ["A"]).iloc[:0], known_at=ts(3), batch_id="none"
    ).written
    assert empty.written
    asked: list[str] = []
    real = again.lake.has_batch

    def has_batch(name: str, batch_id: str, *, refresh: bool = True) -> bool:
        asked.append(batch_id)
        return real(name, batch_id, refresh=refresh)

    again.lake.has_batch = has_batch  # type: ignore[method-assign]
    later = again.write("prices", prices(9, ["A"]), known_at=ts(9))
    assert later.written and asked == []  # no file holds 2024-01-09: not looked up
    assert again.has_batch("prices", later.batch_id)


def test_reads_of_days_and_ranges_across_batches_answer_as_the_lake(tmp_path: Path) -> None:
    """Buffered rows are indexed by valid date: a batch spanning days, days written by
    several batches, and reads of one day, of ranges and with filters of every kind."""
    plain = Lake(str(tmp_path / "plain"))
    store = BufferedStore(Lake(str(tmp_path / "buffered")))
    writes = [
        (pd.concat([prices(4, ["A", "B"]), prices(2, ["A"])]), ts(4)),  # two days, unsorted
        (prices(3, ["A", "B"], close=2.0), ts(3)),
        (prices(3, ["C"], close=3.0), ts(5)),
        (prices(2, ["B"], close=4.0), ts(6)),
        (prices(3, ["A"], close=5.0), ts(7)),  # restatement
    ]
    scans: list[str] = []
    real = store.lake.dataset

    def dataset(name: str, *args: object, **kwargs: object) -> ds.Dataset:
        scans.append(name)
        return real(name, *args, **kwargs)  # type: ignore[arg-type]

    store.lake.dataset = dataset  # type: ignore[method-assign]
    reads: list[tuple[dt.datetime, object, object]] = [
        (ts(9), dt.date(2024, 1, 3), None),
        (ts(5), dt.date(2024, 1, 3), None),
        (ts(9), (dt.date(2024, 1, 2), dt.date(2024, 1, 3)), None),
        (ts(9), (dt.date(2024, 1, 1), dt.date(2024, 1, 9)), pc.field("security_id") == "A"),
        (ts(9), dt.date(2024, 1, 4), pc.field("ticker") != "TA"),
        (ts(9), dt.date(2024, 1, 3), pc.field("security_id").isin(["B", "C"])),
        (ts(9), dt.date(2024, 1, 5), None),
    ]

    def answers(store: Lake | BufferedStore) -> list[list[dict[str, object]]]:
        out = []
        for known, valid, flt in reads:
            got = store.as_of("prices", known_at=known, valid_at=valid, filter=flt)  # type: ignore[arg-type]
            out.append(got.drop_columns(["_ingested_at", "_batch_id"]).to_pylist())
        return out

    for frame, known in writes:
        plain.write("prices", frame, known_at=known)
        store.write("prices", frame, known_at=known)
        assert answers(store) == answers(plain)
    assert scans == ["prices"]  # the lake, holding nothing, was scanned once for its schema
    store.flush()
    assert answers(store) == answers(plain)


def test_a_flush_drops_the_batches_another_writer_committed_meanwhile(tmp_path: Path) -> None:
    """The flush's commit checks the log again: a batch committed by someone else since
    (found because a file now holds its day) is dropped, the new ones are committed."""
    lake = Lake(str(tmp_path / "lake"))
    lake.write("prices", prices(1, ["A"]), known_at=ts(1))
    ours = BufferedStore(Lake(str(tmp_path / "lake")))
    assert ours.write("prices", prices(2, ["A", "B"]), known_at=ts(2)).written
    assert ours.write("prices", prices(5, ["A"]), known_at=ts(5)).written
    other = BufferedStore(Lake(str(tmp_path / "lake")))
    other.write("prices", prices(2, ["A", "B"]), known_at=ts(2))
    other.flush()
    ours.flush()
    assert lake.status("prices").rows == 1 + 2 + 1


def test_cached_reads_of_some_columns_filtered_on_others(tmp_path: Path) -> None:
    """A cached table's read selects its columns before the row filter, unless the extra
    filter reads a column the read does not return."""
    plain = Lake(str(tmp_path / "lake"))
    plain.write("prices", prices(2, ["A", "B", "C"]), known_at=ts(2))
    plain.write("prices", prices(3, ["A", "B"]), known_at=ts(3))
    store = BufferedStore(Lake(str(tmp_path / "lake")), cached_tables=["prices"])
    for flt in (
        pc.field("ticker") != "TA",
        pc.field("security_id") == "B",
        pc.field("security_id").isin(["A", "C"]),
        None,
    ):
        read = {"known_at": ts(9), "valid_at": (dt.date(2024, 1, 2), dt.date(2024, 1, 3))}
        got = store.as_of("prices", columns=["close"], filter=flt, **read)  # type: ignore[arg-type]
        want = plain.as_of("prices", columns=["close"], filter=flt, **read)  # type: ignore[arg-type]
        assert got.to_pylist() == want.to_pylist()
        assert got.num_rows


def test_short_reads_of_committed_days_scan_the_lake_once_per_version(tmp_path: Path) -> None:
    """Reads of the last days of a point-in-time table the lake holds (a session's reads
    of the tables a run writes, after a flush) are answered from one scan of a window of
    the lake's rows, at every knowledge time and filter, as the lake answers them; a
    read outside the window, and a new version of the table, scan again."""
    plain = Lake(str(tmp_path / "plain"))
    store = BufferedStore(Lake(str(tmp_path / "buffered")))
    for day in range(2, 12):
        for lake in (plain, store):
            lake.write("prices", prices(day, ["A", "B"], close=float(day)), known_at=ts(day))
    plain.write("prices", prices(5, ["A"], close=50.0), known_at=ts(13))  # restatement
    store.write("prices", prices(5, ["A"], close=50.0), known_at=ts(13))
    store.flush()
    scans: list[str] = []
    real = store.lake.dataset

    def dataset(name: str, *args: object, **kwargs: object) -> ds.Dataset:
        scans.append(name)
        return real(name, *args, **kwargs)  # type: ignore[arg-type]

    store.lake.dataset = dataset  # type: ignore[method-assign]

    def read(lake: Lake | BufferedStore, known: int, first: int, last: int, flt: object) -> list:
        got = lake.as_of(
            "prices",
            known_at=ts(known),
            valid_at=(dt.date(2024, 1, first), dt.date(2024, 1, last)),
            filter=flt,  # type: ignore[arg-type]
        )
        return got.drop_columns(["_ingested_at", "_batch_id"]).to_pylist()

    only_a = pc.field("security_id") == "A"
    for known, first, last in [(6, 2, 5), (9, 3, 8), (14, 1, 11), (12, 5, 5), (14, 4, 10)]:
        assert read(store, known, first, last, None) == read(plain, known, first, last, None)
        assert read(store, known, first, last, only_a) == read(plain, known, first, last, only_a)
    assert scans == ["prices", "prices"]  # one window per filter
    # A read reaching beyond the window scans a new one.
    far = (dt.date(2023, 9, 1), dt.date(2023, 9, 30))
    assert store.as_of("prices", known_at=ts(14), valid_at=far).num_rows == 0
    assert len(scans) == 3
    # A write through the lake is a new version of the table: read again.
    for lake in (plain, store.lake):
        lake.write("prices", prices(7, ["B"], close=70.0), known_at=ts(15))
    assert read(store, 16, 2, 11, None) == read(plain, 16, 2, 11, None)
    assert len(scans) == 4


def test_day_keys_are_the_keys_a_read_of_the_day_gives_or_none(tmp_path: Path) -> None:
    """``day_keys`` answers what ``stored_keys`` reads through ``as_of`` (every append of
    the day counted, later batches included), and None whenever it cannot be sure: a day
    the lake may hold, a retracted row, a table whose rows are not point facts."""
    from pipelines.execution import records
    from pipelines.timeline import LATEST

    lake = Lake(str(tmp_path / "lake"))
    store = BufferedStore(lake)
    day = dt.date(2024, 1, 3)

    def read(s: Lake | BufferedStore, d: dt.date) -> set[tuple[str, ...]]:
        t = s.as_of("prices", known_at=LATEST, valid_at=d, columns=["security_id"])
        return {(str(v),) for v in t.column("security_id").to_pylist()}

    assert store.day_keys("prices", day) == set()
    store.write("prices", prices(3, ["A", "B"], close=2.0), known_at=ts(3))
    assert store.day_keys("prices", day) == read(store, day) == {("A",), ("B",)}
    store.write("prices", prices(3, ["B", "C"], close=2.5), known_at=ts(4))  # B restated
    store.write("prices", prices(2, ["D"], close=1.0), known_at=ts(2))  # another day
    assert store.day_keys("prices", day) == read(store, day) == {("A",), ("B",), ("C",)}
    assert records.stored_keys(store, "prices", day) == {("A",), ("B",), ("C",)}
    # The caller's copy: changing it changes nothing kept.
    store.day_keys("prices", day).add(("Z",))  # type: ignore[union-attr]
    assert store.day_keys("prices", day) == {("A",), ("B",), ("C",)}
    # An effective-time table's read of a day holds earlier rows: never answered here.
    assert store.day_keys("security_master", day) is None
    # Flushed: the lake may hold the day, so the caller reads (and gets the same keys).
    store.flush()
    assert store.day_keys("prices", day) is None
    assert records.stored_keys(store, "prices", day) == {("A",), ("B",), ("C",)}
    # A retraction in the buffer: the read decides.
    later = dt.date(2024, 1, 4)
    store.write("prices", prices(4, ["A", "B"], close=3.0), known_at=ts(4))
    retracted = BufferedStore(Lake(str(tmp_path / "other")))
    retracted.write("prices", prices(4, ["A", "B"], close=3.0), known_at=ts(4))
    assert retracted.day_keys("prices", later) == {("A",), ("B",)}
    pending = retracted._pending["prices"]
    rows = pending.batches[-1]
    flagged = rows.set_column(
        rows.column_names.index("_deleted"), "_deleted", pa.array([True, False])
    )
    pending.add("retraction", flagged)
    assert retracted.day_keys("prices", later) is None
    assert store.day_keys("prices", later) == read(store, later) == {("A",), ("B",)}
