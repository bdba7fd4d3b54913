"""The price rows a retrain worker hands the panel query (``ScannedInputs.ex_date_prices``),
on hand-built tables: corner cases the simulator does not produce."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from pipelines.backtest.retrain import _ex_date_rows

pytestmark = pytest.mark.unit

D1, D2, D3 = dt.date(2024, 3, 1), dt.date(2024, 3, 4), dt.date(2024, 3, 5)
T1 = dt.datetime(2024, 3, 1, 22, tzinfo=dt.UTC)
T2 = dt.datetime(2024, 3, 6, 22, tzinfo=dt.UTC)


def _prices() -> pa.Table:
    return pa.table(
        {
            "security_id": ["NA", "NA", "B", "NA", "B", "B"],
            "valid_date": pa.array([D1, D2, D2, D2, D3, D1], pa.date32()),
            "known_at": pa.array([T1, T1, T1, T2, T1, T1], pa.timestamp("us", tz="UTC")),
            "close": [10.0, 11.0, 20.0, 11.5, 21.0, 19.0],
        }
    )


def _actions(**columns: pa.Array) -> pa.Table:
    base = {
        # NA: two dividends going ex on D2 (and its close restated later); B: a split on D3
        "security_id": pa.array(["NA", "NA", "B"]),
        "valid_date": pa.array([D2, D2, D3], pa.date32()),
        "action_type": pa.array(["dividend", "dividend", "split"]),
    }
    return pa.table(base | columns)


def test_every_version_of_each_ex_date_close_once_in_scan_order() -> None:
    rows = _ex_date_rows(ds.dataset(_prices()), ds.dataset(_actions()))
    assert rows is not None
    # rows 1 and 3 of the scan: both versions of NA's D2 close, once although two
    # dividends go ex that day; nothing of the split's day nor of other days
    assert rows.to_table().equals(_prices().take([1, 3]))


def test_tables_that_cannot_be_joined_hand_out_nothing() -> None:
    large = _actions(security_id=pa.array(["NA", "NA", "B"], pa.large_string()))
    untyped = _actions().drop_columns(["action_type"])
    for actions in (large, untyped):
        # None: the panel query then reads every price row, as from a plain lake
        assert _ex_date_rows(ds.dataset(_prices()), ds.dataset(actions)) is None
