"""A lake written by an older version keeps working after a column is declared: a new
nullable column is added to the stored table (old rows read as null); a new NOT NULL
column is refused with one line naming the table and column."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from pipelines.lake import Lake, LakeSchemaError, TableSpec
from pipelines.lake.catalog import temporary_table

pytestmark = pytest.mark.unit

T1 = dt.datetime(2024, 1, 2, 22, tzinfo=dt.UTC)
T2 = dt.datetime(2024, 1, 3, 22, tzinfo=dt.UTC)


def _spec(*extra: pa.Field) -> TableSpec:
    return TableSpec(
        name="test_upgraded",
        description="a table whose declaration grows",
        key=("security_id",),
        fields=(pa.field("security_id", pa.string(), False), pa.field("x", pa.float64()), *extra),
    )


def _write_v1(root: Path) -> None:
    with temporary_table(_spec()):
        frame = pd.DataFrame({"security_id": ["A"], "x": [1.0], "valid_date": [T1.date()]})
        Lake(str(root)).write("test_upgraded", frame, known_at=T1)


def test_a_new_nullable_column_is_added_to_an_existing_table(tmp_path: Path) -> None:
    _write_v1(tmp_path)
    with temporary_table(_spec(pa.field("reason", pa.string()))):
        lake = Lake(str(tmp_path))  # a new process, after the upgrade
        old = lake.as_of("test_upgraded", known_at=T2, valid_at=T1.date()).to_pylist()
        assert [(r["security_id"], r["x"], r["reason"]) for r in old] == [("A", 1.0, None)]
        frame = pd.DataFrame(
            {"security_id": ["B"], "x": [2.0], "reason": ["new"], "valid_date": [T2.date()]}
        )
        lake.write("test_upgraded", frame, known_at=T2)
        both = lake.as_of("test_upgraded", known_at=T2, valid_at=(T1.date(), T2.date()))
        assert sorted(both.column("reason").to_pylist(), key=str) == [None, "new"]


def test_a_new_not_null_column_is_refused_in_one_line(tmp_path: Path) -> None:
    _write_v1(tmp_path)
    with temporary_table(_spec(pa.field("action_id", pa.string(), False))):
        lake = Lake(str(tmp_path))
        with pytest.raises(LakeSchemaError, match="'test_upgraded', column 'action_id'") as info:
            lake.as_of("test_upgraded", known_at=T2, valid_at=T1.date())
        assert "\n" not in str(info.value)
