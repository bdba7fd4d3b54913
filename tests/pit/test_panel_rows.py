"""RawCells.from_rows places the long panel rows by (date, security): any row order."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pipelines.pit.lake_panel import RAW_FLOATS, RawCells

pytestmark = pytest.mark.unit


def _rows() -> pa.Table:
    dates = [dt.date(2024, 1, 2), dt.date(2024, 1, 2), dt.date(2024, 1, 3), dt.date(2024, 1, 4)]
    n = len(dates)
    columns: dict[str, pa.Array] = {
        "security_id": pa.array(["B", "A", "A", "C"]),
        "date": pa.array(dates, pa.date32()),
        "present": pa.array([True, True, False, True]),
        "listed": pa.array([True, None, False, True]),
        "sector": pa.array(["Tech", None, "Energy", "Tech"]),
    }
    for k, name in enumerate(RAW_FLOATS):
        columns[name] = pa.array([float(k * 10 + j) if j != 1 else None for j in range(n)])
    return pa.table(columns)


def test_from_rows_places_cells_whatever_the_row_order() -> None:
    days = pd.DatetimeIndex(pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-04"]))
    table = _rows()
    cells = RawCells.from_rows(table, days)
    shuffled = RawCells.from_rows(table.take(pa.array([3, 1, 0, 2])), days)

    assert list(cells.secs) == ["A", "B", "C"]
    assert cells.floats["close"][0, 1] == 0.0 and np.isnan(cells.floats["close"][0, 0])
    assert cells.floats["close"][2, 2] == 3.0 and np.isnan(cells.floats["close"][1, 1])
    assert cells.sector[0, 1] == "Tech" and cells.sector[0, 0] is None
    assert cells.sector[1, 0] == "Energy" and cells.sector[1, 1] is None
    assert cells.listed.tolist() == [
        [False, True, False],
        [False, False, False],
        [False, False, True],
    ]
    assert cells.present.tolist() == [
        [True, True, False],
        [False, False, False],
        [False, False, True],
    ]
    assert list(shuffled.secs) == list(cells.secs)
    for name in RAW_FLOATS:
        np.testing.assert_array_equal(shuffled.floats[name], cells.floats[name])
    assert shuffled.sector.tolist() == cells.sector.tolist()
    np.testing.assert_array_equal(shuffled.listed, cells.listed)
    np.testing.assert_array_equal(shuffled.present, cells.present)
