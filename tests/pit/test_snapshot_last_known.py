"""The snapshot's per-security reductions computed in Arrow equal the pandas ones."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pipelines.pit.snapshot import _last_known, _sectors

pytestmark = pytest.mark.unit


def _table(gen: np.random.Generator, n: int) -> pa.Table:
    """Rows with unique (security, valid date), some values null or NaN, in random order."""
    pairs = {(f"S{gen.integers(0, 6)}", int(gen.integers(0, 9))) for _ in range(n)}
    ids = [p[0] for p in pairs]
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=p[1]) for p in pairs]
    shares = [None if gen.random() < 0.2 else float(gen.normal()) for _ in pairs]
    shares = [np.nan if x is not None and x < -1 else x for x in shares]
    return pa.table(
        {
            "security_id": ids,
            "sector": [None if gen.random() < 0.2 else f"sec{gen.integers(0, 3)}" for _ in pairs],
            "listed": [None if gen.random() < 0.2 else bool(gen.random() < 0.7) for _ in pairs],
            "shares_outstanding": pa.array(shares, pa.float64()),
            "valid_date": pa.array(days, pa.date32()),
        }
    )


@pytest.mark.parametrize("seed", range(5))
def test_reductions_equal_pandas(seed: int) -> None:
    table = _table(np.random.default_rng(seed), 30)
    frame = table.to_pandas()
    # The pandas formulas load_snapshot used.
    master = frame.sort_values("valid_date").groupby("security_id").tail(1)
    master = master[master["listed"].fillna(True).astype(bool) & master["sector"].notna()]
    want = pd.Series(
        master["sector"].astype(str).to_numpy(),
        index=master["security_id"].astype(str).to_numpy(),
        dtype=object,
    ).sort_index()
    pd.testing.assert_series_equal(_sectors(table), want, check_index_type=True)
    last = frame.sort_values("valid_date").groupby("security_id")[["shares_outstanding"]].last()
    (shares,) = _last_known(table, ["shares_outstanding"])
    expected = last["shares_outstanding"].astype(float).dropna()
    pd.testing.assert_series_equal(shares, expected, check_exact=True, check_index_type=True)


def test_no_rows() -> None:
    empty = _table(np.random.default_rng(0), 1).slice(0, 0)
    assert _sectors(empty).empty
    (shares,) = _last_known(empty, ["shares_outstanding"])
    assert shares.empty and shares.dtype == float
