"""Writes: schema enforcement that writes nothing on error, idempotent batches, time travel."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest

from pipelines.lake import Lake, LakeSchemaError, UnknownTableError
from pipelines.lake.maintenance import maintain_table
from tests.lake.helpers import prices, ts

pytestmark = pytest.mark.unit


def _version(lake: Lake, name: str = "prices") -> int | None:
    return lake.status(name).version


def test_same_batch_twice_adds_nothing(lake: Lake) -> None:
    first = lake.write("prices", prices(2, ["A", "B"]), known_at=ts(2))
    second = lake.write("prices", prices(2, ["A", "B"]), known_at=ts(2))
    assert first.written and not second.written
    assert first.batch_id == second.batch_id
    assert lake.status("prices").rows == 2
    assert _version(lake) == first.version


def test_explicit_batch_id_dedups_even_if_content_differs(lake: Lake) -> None:
    lake.write("prices", prices(2, ["A"]), known_at=ts(2), batch_id="vendor-file-123")
    again = lake.write(
        "prices", prices(2, ["A"], close=99.0), known_at=ts(2), batch_id="vendor-file-123"
    )
    assert not again.written
    assert lake.status("prices").rows == 1


def test_same_rows_with_a_later_known_at_is_a_new_version(lake: Lake) -> None:
    lake.write("prices", prices(2, ["A"]), known_at=ts(2))
    assert lake.write("prices", prices(2, ["A"]), known_at=ts(3)).written
    assert lake.status("prices").rows == 2


def test_batch_id_recorded_in_commit_metadata(lake: Lake) -> None:
    res = lake.write("prices", prices(2, ["A"]), known_at=ts(2))
    latest = lake.versions("prices")[0]
    assert latest["alphafactory.batch_id"] == res.batch_id


@pytest.mark.parametrize(
    ("mutate", "column", "row", "problem"),
    [
        (lambda f: f.drop(columns=["ticker"]), "ticker", None, "missing column"),
        (lambda f: f.assign(extra=1), "extra", None, "unexpected column"),
        (lambda f: f.assign(close=["1.5", "x", "2"]), "close", 1, "cannot convert"),
        (lambda f: f.assign(security_id=["A", "B", None]), "security_id", 2, "null in key column"),
        (lambda f: f.assign(close=[1.0, None, 2.0]), "close", 1, "null in non-nullable"),
        (
            lambda f: f.assign(valid_date=[dt.date(2024, 1, 2), None, dt.date(2024, 1, 2)]),
            "valid_date",
            1,
            "null",
        ),
        (
            lambda f: f.assign(
                valid_date=pd.to_datetime(
                    ["2024-01-02 00:00", "2024-01-02 13:00", "2024-01-02 00:00"]
                )
            ),
            "valid_date",
            1,
            "time of day",
        ),
    ],
)
def test_schema_errors_name_table_column_row_and_write_nothing(
    lake: Lake, mutate, column: str, row: int | None, problem: str
) -> None:
    lake.write("prices", prices(2, ["Z"]), known_at=ts(2))
    before = _version(lake)
    frame = mutate(prices(2, ["A", "B", "C"]))
    with pytest.raises(LakeSchemaError) as err:
        lake.write("prices", frame, known_at=ts(3))
    assert err.value.table == "prices"
    assert err.value.column == column
    assert err.value.row == row
    assert problem in str(err.value)
    assert f"column {column!r}" in str(err.value)
    assert _version(lake) == before
    assert lake.status("prices").rows == 1


def test_schema_error_on_first_write_creates_nothing(lake: Lake) -> None:
    with pytest.raises(LakeSchemaError):
        lake.write("prices", prices(2, ["A"]).drop(columns=["close"]), known_at=ts(2))
    assert not lake.status("prices").exists


def test_naive_known_at_is_refused(lake: Lake) -> None:
    frame = prices(2, ["A"]).assign(known_at=[pd.Timestamp("2024-01-02 22:00")])
    with pytest.raises(LakeSchemaError, match="no timezone"):
        lake.write("prices", frame)
    with pytest.raises(LakeSchemaError, match="timezone-aware"):
        lake.write("prices", prices(2, ["A"]), known_at=dt.datetime(2024, 1, 2))


def test_unknown_table_lists_declared_ones(lake: Lake) -> None:
    with pytest.raises(UnknownTableError, match="prices"):
        lake.write("pricez", prices(2, ["A"]), known_at=ts(2))


def test_arrow_input_and_per_row_known_at(lake: Lake) -> None:
    frame = prices(2, ["A", "B"]).assign(known_at=[ts(2), ts(4)])
    lake.write("prices", pa.Table.from_pandas(frame, preserve_index=False))
    assert lake.as_of("prices", known_at=ts(3), valid_at=dt.date(2024, 1, 2)).num_rows == 1


def test_time_travel_by_version_and_timestamp(lake: Lake) -> None:
    v0 = lake.write("prices", prices(2, ["A"]), known_at=ts(2)).version
    stamp = dt.datetime.now(dt.UTC)
    lake.write("prices", prices(3, ["A", "B"]), known_at=ts(3))
    assert v0 is not None
    assert lake.at_version("prices", v0).num_rows == 1
    assert lake.at_version("prices", stamp).num_rows == 1
    assert lake.at_version("prices", v0 + 1).num_rows == 3


def test_maintenance_keeps_results_and_time_travel(lake: Lake) -> None:
    for day in range(2, 12):
        lake.write("prices", prices(day, ["A", "B", "C"], close=float(day)), known_at=ts(day))
    lake.write("prices", prices(5, ["A"], close=55.0), known_at=ts(12))
    snapshot = lake.as_of(
        "prices", known_at=ts(13), valid_at=(dt.date(2024, 1, 2), dt.date(2024, 1, 11))
    )
    before_files = lake.status("prices").files
    old_version = lake.status("prices").version
    assert old_version is not None

    report = maintain_table(lake, "prices")
    assert report.checkpoint
    assert (report.zordered or report.compacted)["numFilesRemoved"] > 0
    assert lake.status("prices").files < before_files
    after = lake.as_of(
        "prices", known_at=ts(13), valid_at=(dt.date(2024, 1, 2), dt.date(2024, 1, 11))
    )
    assert after.sort_by("valid_date").equals(snapshot.sort_by("valid_date"))
    # Files replaced by compaction are inside the retention window: time travel still works.
    assert lake.at_version("prices", old_version).num_rows == 31
    # Idempotent: a second run changes no rows.
    maintain_table(lake, "prices")
    assert lake.status("prices").rows == 31


def test_maintenance_without_compaction_keeps_the_files_and_checkpoints(lake: Lake) -> None:
    """``compact=False`` (the buffered backtest's maintenance: its flushes are already
    large date-ordered files) rewrites no data file — compacting rewrote whole tables every
    time, a cost growing with the run — and still checkpoints the log."""
    for d in range(2, 6):
        lake.write("prices", prices(d, ["A", "B"]), known_at=ts(d))
    table = lake.table("prices")
    assert table is not None
    files = sorted(table.file_uris())
    report = maintain_table(lake, "prices", compact=False)
    assert report.checkpoint and not report.compacted and not report.zordered
    table = lake.table("prices")
    assert table is not None and sorted(table.file_uris()) == files


def test_vacuum_below_retention_minimum_is_refused(lake: Lake) -> None:
    lake.write("prices", prices(2, ["A"]), known_at=ts(2))
    with pytest.raises(ValueError, match="break time travel"):
        maintain_table(lake, "prices", retention_hours=0)


def test_init_creates_every_table_once(lake: Lake) -> None:
    created = lake.init()
    assert "prices" in created and "security_master" in created
    assert lake.init() == []
    assert lake.as_of("prices", known_at=ts(2), valid_at=dt.date(2024, 1, 2)).num_rows == 0


def test_zorder_runs_for_tables_that_declare_it(lake: Lake) -> None:
    import pyarrow as pa

    from pipelines.lake import TableSpec
    from pipelines.lake.catalog import temporary_table

    spec = TableSpec(
        name="test_zordered",
        description="test table",
        key=("security_id",),
        fields=(pa.field("security_id", pa.string(), False), pa.field("x", pa.float64())),
        zorder=("security_id", "valid_date"),
    )
    with temporary_table(spec):
        for day in range(2, 6):
            frame = pd.DataFrame(
                {
                    "security_id": ["A", "B"],
                    "x": [1.0, 2.0],
                    "valid_date": [dt.date(2024, 1, day)] * 2,
                }
            )
            lake.write("test_zordered", frame, known_at=ts(day))
        report = maintain_table(lake, "test_zordered", min_files_for_zorder=2)
        assert report.zordered
        assert lake.status("test_zordered").rows == 8


def test_row_batch_ids_skip_batches_already_committed(lake: Lake) -> None:
    day2 = prices(2, ["A", "B"])
    lake.write("prices", day2, known_at=ts(2), batch_id="file-day2")
    chunk = pd.concat([day2, prices(3, ["A", "B"])], ignore_index=True)
    ids = pa.array(["file-day2", "file-day2", "file-day3", "file-day3"])
    res = lake.write("prices", chunk, known_at=ts(3), row_batch_ids=ids)
    assert res.written and res.rows == 2
    assert lake.status("prices").rows == 4
    assert lake.has_batch("prices", "file-day3")
    # Replaying the chunk, or the single day, adds nothing.
    assert not lake.write("prices", chunk, known_at=ts(3), row_batch_ids=ids).written
    assert not lake.write(
        "prices", prices(3, ["A", "B"]), known_at=ts(9), batch_id="file-day3"
    ).written
    assert lake.status("prices").rows == 4
