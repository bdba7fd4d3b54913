"""Reads filtered on a float column answer its rows (Delta file statistics of floats)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pipelines.lake import Lake
from pipelines.testing.contract_frames import price_frame
from pipelines.timeline import LATEST

pytestmark = pytest.mark.unit

DAY = dt.date(2024, 1, 2)
KNOWN = dt.datetime(2024, 1, 2, 22, tzinfo=dt.UTC)


def test_a_read_filtered_on_a_float_column_answers_its_rows(tmp_path: Path) -> None:
    """Bug: float columns had a null count but no bounds in the Delta log, which the
    reader took as null bounds, pruning every file: ``close > x`` answered no rows."""
    lake = Lake(str(tmp_path))
    frame = price_frame(6, [DAY])
    lake.write("prices", frame, known_at=KNOWN)
    cut = float(frame["close"].median())
    got = lake.as_of("prices", known_at=LATEST, valid_at=DAY, filter=pc.field("close") > cut)
    assert got.num_rows == int((frame["close"] > cut).sum()) > 0


def test_nan_and_infinite_values_keep_their_file_readable(tmp_path: Path) -> None:
    """Parquet's float bounds leave NaN out: a file holding NaN gets bounds no comparison
    prunes, and an infinite value (no JSON for it) is clamped, not dropped."""
    lake = Lake(str(tmp_path))
    frame = price_frame(4, [DAY])
    table = pa.Table.from_pandas(frame, preserve_index=False)
    opens = frame["open"].to_numpy(copy=True)
    opens[0] = np.nan  # a NaN value (pandas would make it a null), not a missing one
    table = table.set_column(table.schema.get_field_index("open"), "open", pa.array(opens))
    volume = frame["volume"].to_numpy(copy=True)
    volume[1] = np.inf
    table = table.set_column(table.schema.get_field_index("volume"), "volume", pa.array(volume))
    lake.write("prices", table, known_at=KNOWN)

    def read(expr: pc.Expression) -> list[str]:
        t = lake.as_of("prices", known_at=LATEST, valid_at=DAY, filter=expr)
        return sorted(t.column("security_id").to_pylist())

    ids = frame["security_id"].tolist()
    assert read(pc.is_nan(pc.field("open"))) == [ids[0]]
    assert read(pc.field("open") > 0) == sorted(ids[1:])
    assert read(pc.field("volume") > 1e300) == [ids[1]]
