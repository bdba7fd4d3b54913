"""The reconcile stage's pieces without pandas frames answer what their pandas forms
answered, bit for bit: the rank IC, the previous closes, the book row's Arrow table."""

from __future__ import annotations

import datetime as dt
import math
import random

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pipelines.daily.stages import _as_dict, _book_table, _previous_row, _rank_ic, _row
from pipelines.lake import get_table
from pipelines.lake.conform import conform
from pipelines.lake.errors import LakeSchemaError

pytestmark = pytest.mark.unit

NOW = dt.datetime(2024, 3, 5, 22, tzinfo=dt.UTC)


def _pandas_ic(scores: pd.DataFrame, returns: pd.Series) -> float:
    """The rank IC as it was computed (the reference)."""
    s = scores.set_index("security_id")["score"].astype(float)
    both = pd.concat([s, returns], axis=1, join="inner").dropna()
    if len(both) < 5:
        return math.nan
    return float(both.iloc[:, 0].rank().corr(both.iloc[:, 1].rank()))


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_rank_ic_is_the_pandas_join_rank_and_correlation() -> None:
    gen = np.random.default_rng(3)
    for _ in range(200):
        n = int(gen.integers(0, 40))
        ids = [f"S{i:03d}" for i in gen.permutation(60)[:n]]
        score = gen.standard_normal(n).round(int(gen.integers(0, 3)))  # ties too
        score[gen.random(n) < 0.1] = np.nan
        scores = pd.DataFrame({"security_id": ids, "score": score, "model_id": "m"})
        m = int(gen.integers(0, 60))
        names = [f"S{i:03d}" for i in gen.permutation(60)[:m]]
        ret = gen.standard_normal(m) / 50
        ret[gen.random(m) < 0.1] = np.nan
        returns = pd.Series(ret, index=pd.Index(names).astype(str))
        assert _same(_rank_ic(scores, _as_dict(returns)), _pandas_ic(scores, returns))


def test_rank_ic_of_repeated_securities_is_pandas_answer() -> None:
    scores = pd.DataFrame({"security_id": ["A", "A", "B"], "score": [1.0, 2.0, 3.0]})
    returns = pd.Series([0.1, 0.2], index=["A", "B"])
    with pytest.raises(Exception) as pandas_error:
        _pandas_ic(scores, returns)
    with pytest.raises(type(pandas_error.value)):
        _rank_ic(scores, _as_dict(returns))


def test_previous_row_is_the_shifted_frames_row() -> None:
    gen = np.random.default_rng(4)
    days = pd.DatetimeIndex(pd.bdate_range("2024-01-01", periods=6))
    frame = pd.DataFrame(gen.standard_normal((6, 4)), index=days, columns=["A", "B", "C", "D"])
    frame.iloc[2, 1] = np.nan
    for when in [*days, pd.Timestamp("2023-12-29"), pd.Timestamp("2024-02-01")]:
        want = _as_dict(_row(frame.shift(1), when))
        got = _previous_row(frame, when)
        assert got.keys() == want.keys()
        assert all(_same(got[k], want[k]) for k in want)


def _stored(data: pa.Table | pd.DataFrame) -> pa.Table | str:
    """What the lake stores of a daily_book row (its conformed table), or why it refuses it."""
    try:
        return conform(get_table("daily_book"), data, known_at=NOW, valid_date=NOW.date())
    except LakeSchemaError as exc:
        return str(exc)


def test_book_row_table_is_what_the_lake_stores_of_its_frame() -> None:
    spec = get_table("daily_book")
    gen = random.Random(8)
    floats: list[object] = [1.5, math.nan, -0.0, 0.0, 3, None, 1e300]
    texts: list[object] = ["optimal", None, "a,b"]
    for _ in range(200):
        row = {
            f.name: gen.choice(
                texts
                if str(f.type) == "string"
                else [0, 7, 123456789]
                if str(f.type) == "int64"
                else floats
            )
            for f in spec.fields
        }
        if gen.random() < 0.9:
            row["portfolio_id"] = "P"
        table = _book_table(row)
        assert table is not None
        got, want = _stored(table), _stored(pd.DataFrame([row]))
        assert got == want if isinstance(want, str) else want.equals(got)


def test_book_row_of_other_types_goes_through_the_frame() -> None:
    row: dict[str, object] = {f.name: None for f in get_table("daily_book").fields}
    row["portfolio_id"] = "P"
    row["n_positions"] = np.int64(3)
    assert _book_table(row) is None
    row["n_positions"] = 3
    row["nav"] = True
    assert _book_table(row) is None
