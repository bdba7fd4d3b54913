"""execute_day's shortcuts give what the pandas steps they replace gave."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from pipelines.execution import execute
from pipelines.execution.execute import _frame_reasons, _last_prices, _records

pytestmark = pytest.mark.unit


def _groupby_last(frame: pd.DataFrame) -> dict[str, float]:
    return {str(k): float(v) for k, v in frame.groupby("security_id")["price"].last().items()}


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame({"security_id": ["S3", "S1", "S2"], "price": [3.0, float("nan"), 2.0]}),
        pd.DataFrame({"security_id": ["S2", "S1", "S2"], "price": [3.0, 1.0, float("nan")]}),
        pd.DataFrame({"security_id": ["b", "B", "a"], "price": [1, 2, 3]}),
        pd.DataFrame({"security_id": ["S1", None], "price": [1.0, 2.0]}),
    ],
)
def test_last_prices_is_the_groupby(frame: pd.DataFrame) -> None:
    got, want = _last_prices(frame), _groupby_last(frame)
    assert list(got) == list(want)
    assert [(v, math.copysign(1, v)) for v in got.values() if v == v] == [
        (v, math.copysign(1, v)) for v in want.values() if v == v
    ]
    assert [k for k, v in got.items() if v != v] == [k for k, v in want.items() if v != v]


@pytest.mark.parametrize(
    "reasons", [[None, None], [None, "too big", None], ["a; b"], ["", None], []]
)
def test_frame_reasons_are_what_the_frame_gave_back(reasons: list[str | None]) -> None:
    rows = [{"reject_reason": r, "x": 1.0} for r in reasons]
    want = (
        _records(pd.DataFrame(rows), ["reject_reason"]) if rows else []
    )  # the old path: orders_frame(...) read back with tolist()
    got = _frame_reasons(rows)
    assert len(got) == len(want)
    for g, w in zip(got, [r["reject_reason"] for r in want], strict=True):
        assert type(g) is type(w)
        assert g == w or (g != g and w != w)


def test_missing_text_is_pandas_own() -> None:
    assert execute._missing_text() is execute._missing_text()


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame(
            {
                "client_order_id": ["c3", "c1", "c2"],
                "portfolio_id": ["p"] * 3,
                "security_id": ["S3", "S1", "S2"],
            },
            index=[5, 6, 7],
        ),
        pd.DataFrame(
            {
                "client_order_id": ["c1", "c2", "c3"],
                "portfolio_id": ["p"] * 3,
                "security_id": ["b", "B", "a"],
            }
        ),
        pd.DataFrame(  # not unique strings: the frame's own sort
            {
                "client_order_id": ["c1", "c2", "c3", "c4"],
                "portfolio_id": ["p"] * 4,
                "security_id": ["S2", None, "S1", "S1"],
            }
        ),
    ],
)
def test_by_security_is_the_sorted_frame_records(frame: pd.DataFrame) -> None:
    fields = ("client_order_id", "portfolio_id", "security_id")
    want = _records(frame.sort_values("security_id").reset_index(drop=True), fields)
    assert execute._by_security(frame) == want


def test_at_broker_is_the_masked_ids() -> None:
    events = pd.DataFrame(
        {
            "client_order_id": ["a", "b", "c", "d"],
            "event_type": ["ack", "blocked", "fill", None],
        }
    )
    mask = events["event_type"].isin(execute.AT_BROKER_EVENTS)
    assert execute.at_broker(events) == set(events.loc[mask, "client_order_id"].astype(str))
    assert execute.at_broker(events) == {"a", "c"}
