"""Point-in-time reads: restatements, boundaries, ranges, effective tables, retractions."""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines.lake import Lake
from tests.lake.helpers import master, prices, ts

pytestmark = pytest.mark.unit
D2 = dt.date(2024, 1, 2)


def _closes(table) -> dict[str, float]:
    frame = table.to_pandas()
    return dict(zip(frame["security_id"], frame["close"], strict=True))


def test_restatement_invisible_before_known_at_and_visible_after(lake: Lake) -> None:
    lake.write("prices", prices(2, ["A", "B"], close=10.0), known_at=ts(2))
    restated_at = ts(5, 14, 30, 500)
    lake.write("prices", prices(2, ["A"], close=11.0), known_at=restated_at)

    one_micro = dt.timedelta(microseconds=1)
    before = lake.as_of("prices", known_at=restated_at - one_micro, valid_at=D2)
    exactly = lake.as_of("prices", known_at=restated_at, valid_at=D2)
    after = lake.as_of("prices", known_at=restated_at + one_micro, valid_at=D2)

    assert _closes(before) == {"A": 10.0, "B": 10.0}
    assert _closes(exactly) == {"A": 11.0, "B": 10.0}
    assert _closes(after) == {"A": 11.0, "B": 10.0}


def test_nothing_visible_before_first_publication(lake: Lake) -> None:
    lake.write("prices", prices(2, ["A"]), known_at=ts(2))
    assert (
        lake.as_of("prices", known_at=ts(2) - dt.timedelta(microseconds=1), valid_at=D2).num_rows
        == 0
    )
    assert lake.as_of("prices", known_at=ts(2), valid_at=D2).num_rows == 1


def test_known_at_in_other_timezone_is_the_same_instant(lake: Lake) -> None:
    lake.write("prices", prices(2, ["A"]), known_at=ts(2, 22))
    new_york = dt.timezone(dt.timedelta(hours=-5))
    same_instant = dt.datetime(2024, 1, 2, 17, 0, tzinfo=new_york)
    assert lake.as_of("prices", known_at=same_instant, valid_at=D2).num_rows == 1
    with pytest.raises(ValueError, match="no timezone"):
        lake.as_of("prices", known_at=dt.datetime(2024, 1, 3), valid_at=D2)


def test_as_of_over_a_valid_time_range(lake: Lake) -> None:
    for day in (2, 3, 4, 5):
        lake.write("prices", prices(day, ["A", "B"], close=float(day)), known_at=ts(day))
    # Day 3 restated on day 6: visible only to a reader at day 6 or later.
    lake.write("prices", prices(3, ["A"], close=33.0), known_at=ts(6))

    rng = (dt.date(2024, 1, 3), dt.date(2024, 1, 4))
    at_day5 = lake.as_of("prices", known_at=ts(5), valid_at=rng).to_pandas()
    assert len(at_day5) == 4
    assert sorted(at_day5["valid_date"].unique()) == [dt.date(2024, 1, 3), dt.date(2024, 1, 4)]
    assert set(at_day5.loc[at_day5["valid_date"] == dt.date(2024, 1, 3), "close"]) == {3.0}

    at_day6 = lake.as_of("prices", known_at=ts(6), valid_at=rng).to_pandas()
    day3 = at_day6[at_day6["valid_date"] == dt.date(2024, 1, 3)]
    assert dict(zip(day3["security_id"], day3["close"], strict=True)) == {"A": 33.0, "B": 3.0}

    # A reader on day 3 cannot see day 4 at all.
    assert set(lake.as_of("prices", known_at=ts(3), valid_at=rng).to_pandas()["valid_date"]) == {
        dt.date(2024, 1, 3)
    }


def test_range_spanning_years_reads_both_partitions(lake: Lake) -> None:
    frame = prices(2, ["A"])
    late = frame.assign(valid_date=[dt.date(2023, 12, 29)])
    lake.write("prices", late, known_at=ts(1))
    lake.write("prices", frame, known_at=ts(2))
    got = lake.as_of("prices", known_at=ts(3), valid_at=(dt.date(2023, 12, 1), D2))
    assert got.num_rows == 2


def test_retraction_hides_a_fact_from_then_on(lake: Lake) -> None:
    lake.write("prices", prices(2, ["A", "B"]), known_at=ts(2))
    lake.write("prices", prices(2, ["B"]), known_at=ts(4), deleted=True)
    assert set(_closes(lake.as_of("prices", known_at=ts(3), valid_at=D2))) == {"A", "B"}
    assert set(_closes(lake.as_of("prices", known_at=ts(4), valid_at=D2))) == {"A"}
    assert lake.history("prices", {"security_id": "B"}).num_rows == 2


def test_effective_table_state_in_force(lake: Lake) -> None:
    lake.write(
        "security_master", master([("S1", "OLD", "Tech", dt.date(2024, 1, 1))]), known_at=ts(1)
    )
    # Ticker change effective Jan 10, announced Jan 5.
    lake.write(
        "security_master", master([("S1", "NEW", "Tech", dt.date(2024, 1, 10))]), known_at=ts(5)
    )
    # Sector reclassification effective Jan 1, but only learned on Jan 20 (a correction).
    lake.write(
        "security_master", master([("S1", "OLD", "Energy", dt.date(2024, 1, 1))]), known_at=ts(20)
    )

    def tick(known: dt.datetime, valid: dt.date) -> tuple[str, str]:
        got = lake.as_of("security_master", known_at=known, valid_at=valid).to_pylist()
        assert len(got) == 1
        return got[0]["ticker"], got[0]["sector"]

    assert tick(ts(4), dt.date(2024, 1, 15)) == ("OLD", "Tech")  # change not yet known
    assert tick(ts(6), dt.date(2024, 1, 9)) == ("OLD", "Tech")
    assert tick(ts(6), dt.date(2024, 1, 10)) == ("NEW", "Tech")
    assert tick(ts(21), dt.date(2024, 1, 5)) == ("OLD", "Energy")

    spans = lake.as_of(
        "security_master", known_at=ts(6), valid_at=(dt.date(2024, 1, 5), dt.date(2024, 1, 12))
    )
    rows = spans.to_pylist()
    assert [r["ticker"] for r in rows] == ["OLD", "NEW"]
    assert rows[0]["valid_until"] == dt.date(2024, 1, 10)
    assert rows[1]["valid_until"] is None


def test_ties_on_known_at_resolve_to_the_later_ingestion(lake: Lake) -> None:
    lake.write("prices", prices(2, ["A"], close=1.0), known_at=ts(2))
    lake.write("prices", prices(2, ["A"], close=2.0), known_at=ts(2))
    assert _closes(lake.as_of("prices", known_at=ts(3), valid_at=D2)) == {"A": 2.0}


def test_history_shows_every_version_in_order(lake: Lake) -> None:
    lake.write("prices", prices(2, ["A"], close=1.0), known_at=ts(2))
    lake.write("prices", prices(2, ["A"], close=2.0), known_at=ts(3))
    lake.write("prices", prices(3, ["A"], close=3.0), known_at=ts(3))
    hist = lake.history("prices", {"security_id": "A"}).to_pandas()
    assert list(hist["close"]) == [1.0, 2.0, 3.0]


def test_columns_projection_keeps_keys(lake: Lake) -> None:
    lake.write("prices", prices(2, ["A"]), known_at=ts(2))
    got = lake.as_of("prices", known_at=ts(3), valid_at=D2, columns=["close"])
    assert {"security_id", "valid_date", "close"} <= set(got.column_names)
    assert "open" not in got.column_names
