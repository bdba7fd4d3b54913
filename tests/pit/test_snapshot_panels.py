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


@pytest.mark.parametrize("seed", range(20))
def test_two_columns_placed_once_are_their_pivots(seed: int) -> None:
    """``_Grid.frames`` lays several columns of one read on the first one's grid, as
    pivoting each and reindexing it onto that grid does."""
    from pipelines.pit.snapshot import _Grid, _Keys

    table = _table(seed)
    rng = np.random.default_rng(seed + 1000)
    other = rng.standard_normal(table.num_rows)
    other[rng.random(table.num_rows) < 0.4] = np.nan
    table = table.append_column("other", pa.array(other, pa.float64()))
    keys = _Keys.of(table)
    first = table.column("value").to_numpy(zero_copy_only=False).astype(float)
    grid = _Grid.of(keys, first)
    got_first, got_other = grid.frames(keys, first, other)
    want_first = _pivot(table, "value")
    want_other = _pivot(table, "other").reindex(index=want_first.index, columns=want_first.columns)
    for got, want in ((got_first, want_first), (got_other, want_other)):
        assert got.index.equals(want.index) and got.columns.equals(want.columns)
        assert np.array_equal(got.to_numpy(), want.to_numpy(), equal_nan=True)


def _snapshot(seed: int):
    from pipelines.pit.snapshot import MarketSnapshot

    rng = np.random.default_rng(seed)
    n_rows, n_cols = int(rng.integers(1, 70)), int(rng.integers(1, 30))
    index = pd.DatetimeIndex(pd.bdate_range("2024-01-01", periods=n_rows), name="valid_date")
    columns = pd.Index([f"S{j:03d}" for j in range(n_cols)], dtype="str", name="security_id")
    close = rng.uniform(1, 100, (n_rows, n_cols))
    close[rng.random((n_rows, n_cols)) < 0.3] = np.nan
    close[:, : n_cols // 4] = np.nan if seed % 2 else close[:, : n_cols // 4]
    volume = rng.uniform(0, 1e6, (n_rows, n_cols))
    volume[rng.random((n_rows, n_cols)) < 0.2] = np.nan
    shares = pd.Series(
        rng.uniform(-1e6, 1e8, n_cols // 2), index=columns[rng.permutation(n_cols)[: n_cols // 2]]
    )
    shares[rng.random(len(shares)) < 0.2] = np.nan
    frame = lambda v: pd.DataFrame(v, index=index, columns=columns)  # noqa: E731
    returns = frame(close).pct_change(fill_method=None)
    return MarketSnapshot(
        day=index[-1].date(),
        known_at=dt.datetime(2024, 6, 1),
        close=frame(close),
        volume=frame(volume),
        returns=returns,
        sectors=pd.Series("tech", index=columns),
        shares=shares,
        book_equity=pd.Series(rng.uniform(-1e6, 1e9, n_cols), index=columns),
        sentiment=frame(np.full((n_rows, n_cols), np.nan)),
    )


@pytest.mark.parametrize("seed", range(20))
def test_last_close_and_market_cap_are_the_pandas_formulas(seed: int) -> None:
    snap = _snapshot(seed)
    last = snap.last_close()
    want = snap.close.ffill().iloc[-1]
    assert last.index.equals(want.index) and last.name == want.name
    assert np.array_equal(last.to_numpy(), want.to_numpy(), equal_nan=True)
    shares = snap.shares.reindex(snap.close.columns)
    shares = shares.where(shares.notna() & (shares > 0), snap.volume.mean() * 100.0)
    cap, want_cap = snap.market_cap(), snap.close * shares
    assert cap.index.equals(want_cap.index) and cap.columns.equals(want_cap.columns)
    assert np.array_equal(cap.to_numpy(), want_cap.to_numpy(), equal_nan=True)
