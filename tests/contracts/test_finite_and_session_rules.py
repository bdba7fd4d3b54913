"""Non-finite numbers and dates off the trading calendar fail their contract rules
(issue 15: ``inf`` in a price and rows dated on an exchange holiday were accepted)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from pipelines.contracts import Outcome, ValidationContext, parse_contract, validate_frame
from pipelines.testing.contract_frames import price_frame, publish_time, security_ids

pytestmark = pytest.mark.unit

DAY = dt.date(2024, 3, 5)
N = 50
FILE = "prices.csv.gz"


def _ctx(day: dt.date = DAY) -> ValidationContext:
    return ValidationContext(
        feed="sftp",
        logical_date=day,
        source_files=(FILE,),
        previous_row_count=N,
        known_security_ids=set(security_ids(N)),
        expected_publish_time=publish_time(day),
    )


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_a_non_finite_close_names_file_row_and_rule(value: float) -> None:
    frame = price_frame(N, [DAY])
    frame.loc[7, "close"] = value
    frame.loc[7, "high"] = max(float(frame.loc[7, "high"]), 1.0)
    report = validate_frame("prices", frame, _ctx())
    assert report.outcome is Outcome.BLOCKED, report.summary()
    rule = "close_finite" if not np.isnan(value) else "schema.close.not_null"
    failure = report.failure(rule)
    assert failure is not None, report.failed_rules
    assert failure.sample[0].index == 7 and FILE in failure.message


def test_inf_in_volume_fails_volume_finite() -> None:
    frame = price_frame(N, [DAY])
    frame.loc[3, "volume"] = np.inf
    report = validate_frame("prices", frame, _ctx())
    failure = report.failure("volume_finite")
    assert failure is not None, report.failed_rules
    assert failure.sample[0].index == 3


def test_rows_on_a_holiday_fail_the_session_rule() -> None:
    holiday = dt.date(2024, 7, 4)
    frame = price_frame(N, [DAY])
    frame.loc[[4, 9], "valid_date"] = pd.Timestamp(holiday)
    report = validate_frame("prices", frame, _ctx())
    failure = report.failure("trade_date_is_session")
    assert failure is not None, report.failed_rules
    assert sorted(int(i) for i in report.failed_row_indices()) == [4, 9]


def test_delivery_session_rule_catches_a_file_dated_the_day_before() -> None:
    contract = parse_contract(
        {
            "dataset": "prices",
            "columns": {
                "security_id": {"type": "string"},
                "valid_date": {"type": "date"},
                "close": {"type": "float"},
            },
            "rules": [
                {
                    "name": "dated_on_delivery",
                    "kind": "trading_session",
                    "column": "valid_date",
                    "delivery": True,
                }
            ],
        },
        "inline",
    )
    frame = pd.DataFrame(
        {
            "security_id": ["A", "B"],
            "valid_date": pd.to_datetime(["2024-03-04", "2024-03-05"]),
            "close": [1.0, 2.0],
        }
    )
    report = validate_frame(contract, frame, ValidationContext(feed="f", logical_date=DAY))
    failure = report.failure("dated_on_delivery")
    assert failure is not None and [int(i) for i in report.failed_row_indices()] == [0]


def test_prices_after_a_delisting_fail_security_listed() -> None:
    """Issue 15: a security id after its delisting date was accepted as known."""
    frame = price_frame(N, [DAY])
    ids = security_ids(N)
    ctx = _ctx()
    delisted = {ids[2]: DAY - dt.timedelta(days=1), ids[5]: DAY}  # the 2nd trades its last day
    report = validate_frame(
        "prices",
        frame,
        ValidationContext(**{**ctx.__dict__, "delisted": delisted}),
    )
    failure = report.failure("security_listed")
    assert failure is not None, report.failed_rules
    bad = [int(i) for i in report.failed_row_indices()]
    assert [str(frame.loc[i, "security_id"]) for i in bad] == [ids[2]]
    assert validate_frame("prices", frame, ctx).failure("security_listed") is None  # skipped
