"""The snapshot's wide panels are what ``pivot_table(aggfunc="last")`` made of the long rows."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pipelines.pit.snapshot import _total_returns, _wide

pytestmark = pytest.mark.unit


def _pivot(table: pa.Table, value: str) -> pd.DataFrame:
    """The reference: the pandas pivot the snapshot used to build its panels with."""
    frame = table.to_pandas()
    frame["valid_date"] = pd.to_datetime(frame["valid_date"])
    out = frame.pivot_table(index="valid_date", columns="security_id", values=value, aggfunc="last")
    out.index = pd.DatetimeIndex(out.index)
    return out.sort_index().sort_index(axis=1)


def _table(seed: int) -> pa.Table:
    """Long rows with NaNs, nulls, repeated keys, unsorted dates and ids, all-NaN rows/ids."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 200))
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 15, n)]
    ids = [f"S{int(i):03d}" for i in rng.integers(0, 12, n)]
    values = rng.standard_normal(n)
    values[rng.random(n) < 0.3] = np.nan
    mask = rng.random(n) < 0.1
    if seed % 3 == 0:  # rows without a key: the pivot drops them
        ids = [None if rng.random() < 0.1 else i for i in ids]  # type: ignore[misc]
        days = [None if rng.random() < 0.1 else d for d in days]  # type: ignore[misc]
    if seed % 7 == 0:  # nothing known
        values[:] = np.nan
    return pa.table(
        {
            "security_id": pa.array(ids, pa.string()),
            "value": pa.array(values, pa.float64(), mask=mask),
            "valid_date": pa.array(days, pa.date32()),
        }
    )


@pytest.mark.parametrize("seed", range(30))
def test_wide_is_the_pivot(seed: int) -> None:
    table = _table(seed)
    expected = _pivot(table, "value")
    got = _wide(table, "value")
    assert got.index.equals(expected.index) and got.columns.equals(expected.columns)
    assert got.index.dtype == expected.index.dtype and got.columns.dtype == expected.columns.dtype
    assert (got.index.name, got.columns.name) == (expected.index.name, expected.columns.name)
    assert np.array_equal(got.to_numpy(), expected.to_numpy(), equal_nan=True)


class _Actions:
    """A store answering every ``as_of`` with the same corporate actions."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def as_of(self, name: str, **_: object) -> pa.Table:
        assert name == "corporate_actions"
        return self.table


def test_total_returns_apply_every_action_in_order() -> None:
    days = pd.DatetimeIndex(["2024-01-02", "2024-01-03", "2024-01-04"], name="valid_date")
    close = pd.DataFrame(
        {"A": [10.0, 5.0, 5.5], "B": [20.0, 21.0, 10.0], "C": [1.0, 1.0, 1.1]}, index=days
    )
    close.columns = pd.Index(close.columns, dtype="str", name="security_id")
    actions = pa.table(
        {
            "security_id": ["A", "B", "B", "B", "C", "C", "Z"],
            "action_type": ["split", "dividend", "split", "split", "split", "dividend", "split"],
            "ratio": [2.0, None, 2.0, float("nan"), 0.0, None, 3.0],
            "amount": [None, 0.5, None, None, None, 0.0, None],
            "valid_date": pa.array(
                [dt.date(2024, 1, d) for d in (3, 3, 4, 4, 3, 4, 3)], pa.date32()
            ),
        }
    )
    got = _total_returns(_Actions(actions), close, dt.datetime(2024, 1, 5))  # type: ignore[arg-type]
    k = np.ones((3, 3))
    div = np.zeros((3, 3))
    k[1, 0], div[1, 1], k[2, 1] = 2.0, 0.5, 2.0  # NaN/0 ratios, 0 amounts, unknown ids: none
    prev = close.shift(1).to_numpy()
    expected = (close.to_numpy() * k + div) / prev - 1.0
    assert np.array_equal(got.to_numpy(), expected, equal_nan=True)
