"""Key uniqueness per knowledge batch (``ValidationContext.row_batches``, issue 14).

A frame concatenating several deliveries (a backfill chunk) may hold one version of a key
per delivery; only a key repeated inside one delivery is a duplicate. Without batch
labels the frame is one batch, and rows whose key is all null are compared with nothing,
as before.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from pipelines.contracts import ValidationContext, parse_contract, validate_frame

pytestmark = pytest.mark.unit

DAY = dt.date(2024, 1, 2)
CONTRACT = parse_contract(
    {
        "dataset": "t",
        "version": 1,
        "columns": {
            "a": {"type": "string"},
            "b": {"type": "string"},
            "valid_date": {"type": "date", "nullable": False},
        },
        "key": ["a", "b"],
    },
    "t.yaml",
)


def _frame(a: list[str | None], b: list[str | None]) -> pd.DataFrame:
    return pd.DataFrame({"a": a, "b": b, "valid_date": pd.to_datetime([DAY] * len(a))})


def _failed(frame: pd.DataFrame, batches: list[str] | None = None) -> list[int]:
    labels = None if batches is None else np.array(batches)
    report = validate_frame(
        CONTRACT, frame, ValidationContext(feed="t", logical_date=DAY, row_batches=labels)
    )
    assert report.failed_rules in ([], ["key.unique"])
    return [int(i) for i in report.failed_row_indices()]


def test_one_version_per_batch_is_not_a_duplicate() -> None:
    frame = _frame(["x", "y", "x", "y"], ["1", "1", "1", "1"])
    assert _failed(frame) == [0, 1, 2, 3]
    assert _failed(frame, ["orig", "orig", "fix", "fix"]) == []


def test_a_key_repeated_inside_one_batch_is_still_a_duplicate() -> None:
    frame = _frame(["x", "y", "x", "x"], ["1", "1", "1", "1"])
    assert _failed(frame, ["orig", "orig", "fix", "fix"]) == [2, 3]


def test_rows_without_a_key_are_compared_with_nothing() -> None:
    frame = _frame([None, None, "x", "x"], [None, None, "1", "1"])
    assert _failed(frame) == [2, 3]
    assert _failed(frame, ["f", "f", "f", "g"]) == []
    # a partly null key is still a key
    assert _failed(_frame([None, None], ["1", "1"])) == [0, 1]
