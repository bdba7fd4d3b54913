"""Reconciliation's book read as Arrow answers what its pandas form answered: the latest
quantity per security (zeros dropped, a null kept as NaN), the book date, the cash; its
rows' frames are the frames pandas builds from records, and the rows it writes straight
to Arrow are those (and the batch id) the frames wrote."""

from __future__ import annotations

import datetime as dt
import math
import random

import pandas as pd
import pyarrow as pa
import pytest

from pipelines.execution.reconcile import (
    _book_date,
    _frame,
    _latest_cash,
    _latest_positions,
    _write_versioned,
)
from pipelines.execution.records import short_hash
from pipelines.lake import get_table
from tests.execution.capture_store import CaptureStore

pytestmark = pytest.mark.unit


def _pandas_latest(frame: pd.DataFrame) -> dict[str, float]:
    """The pandas form this module used before (the reference)."""
    if frame.empty:
        return {}
    latest = frame.sort_values("valid_date").groupby("security_id").tail(1)
    return {
        str(s): float(q)
        for s, q in zip(latest["security_id"], latest["quantity"], strict=True)
        if q
    }


def _same(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(
        (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a
    )


def test_latest_positions_as_the_pandas_form() -> None:
    gen = random.Random(7)
    for _ in range(100):
        rows: list[dict[str, object]] = []
        days: list[dt.date] = []
        for sid in gen.sample(["A", "B", "C", "D", "E"], gen.randint(0, 5)):
            for day in gen.sample(range(1, 20), gen.randint(1, 4)):
                qty = gen.choice([0.0, 5.0, -3.0, None, 1.5])
                days.append(dt.date(2024, 1, day))
                rows.append(
                    {"security_id": sid, "valid_date": dt.date(2024, 1, day), "quantity": qty}
                )
        gen.shuffle(rows)
        table = pa.Table.from_pylist(
            rows,
            pa.schema(
                [
                    ("security_id", pa.string()),
                    ("valid_date", pa.date32()),
                    ("quantity", pa.float64()),
                ]
            ),
        )
        assert _same(_latest_positions(table), _pandas_latest(table.to_pandas()))
        if rows:
            assert _book_date(table) == max(days)


def test_latest_cash_of_the_currency_at_the_newest_date() -> None:
    schema = pa.schema(
        [("currency", pa.string()), ("valid_date", pa.date32()), ("balance", pa.float64())]
    )
    table = pa.Table.from_pylist(
        [
            {"currency": "USD", "valid_date": dt.date(2024, 1, 3), "balance": 3.0},
            {"currency": "USD", "valid_date": dt.date(2024, 1, 5), "balance": 5.0},
            {"currency": "EUR", "valid_date": dt.date(2024, 1, 9), "balance": 9.0},
            {"currency": "USD", "valid_date": dt.date(2024, 1, 4), "balance": 4.0},
        ],
        schema,
    )
    assert _latest_cash(table, "USD") == 5.0
    assert _latest_cash(table, "GBP") == 0.0
    assert _latest_cash(schema.empty_table(), "USD") == 0.0
    assert _book_date(schema.empty_table()) is None


def test_frames_built_by_column_are_the_record_frames() -> None:
    cols = ["security_id", "quantity", "price", "market_value", "source"]
    values: list[object] = [None, 1.5, math.nan, 0.0]
    gen = random.Random(3)
    for _ in range(80):
        records: list[dict[str, object]] = [
            {
                "security_id": f"S{i}",
                "quantity": gen.choice([0.0, 2.0]),
                "price": gen.choice(values),
                "market_value": gen.choice(values),
                "source": gen.choice(["fills", "delisting"]),
            }
            for i in range(gen.randint(0, 4))
        ]
        want = pd.DataFrame(records, columns=cols)
        got = _frame(records, cols)
        pd.testing.assert_frame_equal(got, want)
        assert got.to_json() == want.to_json()


def _reference_write(
    lake: CaptureStore,
    table: str,
    rows: pd.DataFrame,
    date: dt.date,
    cols: list[str],
    key: str,
    now: dt.datetime,
) -> None:
    """_write_versioned as it was, for a day with nothing stored: every row of the frame."""
    spec = get_table(table)
    content = short_hash(pd.DataFrame({c: rows[c] for c in [key, *cols]}).to_json(), n=32)
    bid = f"{table}:P:{date.isoformat()}:{content}"
    names = [f.name for f in spec.input_fields if f.name not in ("valid_date", "known_at")]
    data = pa.Table.from_pandas(rows, columns=names, preserve_index=False)
    lake.write(table, data, known_at=now, valid_date=date, batch_id=bid)


def test_versioned_rows_go_to_arrow_as_their_frame_did() -> None:
    """The rows written from records (straight to Arrow) and their batch id are those the
    frame of the records gave (pd.DataFrame of the records, or built by column)."""
    gen = random.Random(5)
    day = dt.date(2024, 1, 5)
    now = dt.datetime(2024, 1, 5, 22, tzinfo=dt.UTC)
    amounts: list[object] = [None, math.nan, 0.0, -0.0, 1.5, 3, 1e12]
    for _ in range(60):
        n = gen.randint(1, 5)
        cases: list[tuple[str, list[dict[str, object]], list[str], str]] = [
            (
                "positions",
                [
                    {
                        "portfolio_id": "P",
                        "security_id": f"S{i}",
                        "quantity": gen.choice([2.0, -1.0, -0.0, 7]),
                        "price": gen.choice(amounts),
                        "market_value": gen.choice(amounts),
                        "source": gen.choice(["fills", "delisting", None]),
                    }
                    for i in range(n)
                ],
                ["quantity", "price"],
                "security_id",
            ),
            (
                "reconciliation",
                [
                    {
                        "portfolio_id": "P",
                        "security_id": f"S{i}",
                        "ours": gen.choice([1.0, 0.0, 2]),
                        "theirs": gen.choice(amounts),
                        "difference": gen.choice([0.0, 1.5]),
                        "status": gen.choice(["match", "break", "unverified"]),
                        "note": gen.choice([None, "broker holds more"]),
                        "broker": "paper",
                    }
                    for i in range(n)
                ],
                ["ours", "theirs", "status"],
                "security_id",
            ),
            (
                "cash",
                [
                    {
                        "portfolio_id": "P",
                        "currency": "USD",
                        "balance": gen.choice([1e7, 0.1, 12.25]),
                        "trade_flow": gen.choice(amounts),
                        "commission": gen.choice(amounts),
                        "source": "fills",
                    }
                ],
                ["balance"],
                "currency",
            ),
        ]
        for table, records, cols, key in cases:
            got, want = CaptureStore(), CaptureStore()
            _write_versioned(got, table, records, day, "P", cols, key, now)  # type: ignore[arg-type]
            for frame in (pd.DataFrame(records), _frame(records, list(records[0]))):
                want.writes.clear()
                _reference_write(want, table, frame, day, cols, key, now)
                assert [(t, b) for t, b, _ in got.writes] == [(t, b) for t, b, _ in want.writes]
                assert got.writes[0][2].equals(want.writes[0][2])
