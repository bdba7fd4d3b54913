"""pipelines.timeline: the one trading calendar, the named cutoffs, LATEST, the clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest

from pipelines import timeline
from pipelines.config import get_settings
from pipelines.errors import AlphaFactoryError
from pipelines.timeline import (
    ALL_DATES,
    LATEST,
    NotASessionError,
    OutsideCalendarError,
    trading_calendar,
)

pytestmark = pytest.mark.unit

NY = ZoneInfo("America/New_York")


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("CALENDAR", "CALENDAR_START", "DECISION_CUTOFF", "RUN_TIME"):
        monkeypatch.delenv(f"ALPHAFACTORY_{name}", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_range_is_1990_to_two_years_ahead() -> None:
    cal = trading_calendar()
    today = dt.date.today()
    assert (cal.start, cal.end) == (dt.date(1990, 1, 1), dt.date(today.year + 2, 12, 31))
    assert cal.first == dt.date(1990, 1, 2)  # New Year's Day 1990 was a holiday
    assert cal.last.year == today.year + 2
    assert cal.name == "XNYS" and cal.tz == NY


def test_1995_sessions_skip_weekends_and_holidays() -> None:
    days = timeline.sessions(dt.date(1995, 7, 1), dt.date(1995, 7, 10))
    # 1 Jul 1995 Saturday, 4 Jul Independence Day.
    assert days == [dt.date(1995, 7, d) for d in (3, 5, 6, 7, 10)]
    assert all(
        d.weekday() < 5 for d in timeline.sessions(dt.date(1995, 1, 1), dt.date(1995, 12, 31))
    )


@pytest.mark.parametrize("day", [dt.date(1989, 12, 29), dt.date(dt.date.today().year + 3, 1, 2)])
def test_outside_the_range_is_one_line_naming_the_range(day: dt.date) -> None:
    cal = trading_calendar()
    with pytest.raises(OutsideCalendarError) as info:
        cal.is_session(day)
    message = str(info.value)
    assert "\n" not in message
    assert str(day) in message
    assert f"{cal.start}..{cal.end}" in message
    assert isinstance(info.value, AlphaFactoryError) and isinstance(info.value, ValueError)
    with pytest.raises(OutsideCalendarError):
        timeline.sessions(day, day) if day > cal.end else timeline.sessions(day, cal.first)


def test_calendar_start_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHAFACTORY_CALENDAR_START", "2000-01-01")
    get_settings.cache_clear()
    cal = trading_calendar()
    assert cal.first == dt.date(2000, 1, 3)
    with pytest.raises(OutsideCalendarError, match=r"1999-12-31 .*2000-01-01\.\."):
        cal.check(dt.date(1999, 12, 31))


def test_require_session_names_the_nearest_sessions() -> None:
    cal = trading_calendar()
    assert cal.require_session(dt.date(1995, 7, 5)) == dt.date(1995, 7, 5)
    with pytest.raises(NotASessionError) as info:
        cal.require_session(dt.date(1995, 7, 4))
    assert "1995-07-03" in str(info.value) and "1995-07-05" in str(info.value)
    assert isinstance(info.value, AlphaFactoryError)


def test_next_and_previous() -> None:
    cal = trading_calendar()
    friday, monday = dt.date(1995, 3, 3), dt.date(1995, 3, 6)
    assert cal.next(friday) == monday and cal.previous(monday) == friday
    assert cal.next(dt.date(1995, 3, 4)) == monday  # from a Saturday
    assert cal.previous(dt.date(1995, 3, 4)) == friday
    assert cal.next_session(friday) == monday and cal.previous_session(monday) == friday
    assert cal.previous(cal.first) is None and cal.next(cal.last) is None
    with pytest.raises(OutsideCalendarError, match="no XNYS session before"):
        cal.previous_session(cal.first)
    with pytest.raises(OutsideCalendarError, match="no XNYS session after"):
        cal.next_session(cal.last)
    assert cal.at_or_before(dt.date(1995, 3, 4)) == friday
    assert cal.at_or_after(dt.date(1995, 3, 4)) == monday
    assert cal.at_or_after(friday) == friday


def test_offset_and_back() -> None:
    cal = trading_calendar()
    friday, monday, tuesday = dt.date(1995, 3, 3), dt.date(1995, 3, 6), dt.date(1995, 3, 7)
    assert cal.offset(friday, 1) == monday
    assert cal.offset(friday, 2) == tuesday
    assert cal.offset(tuesday, -2) == friday
    assert cal.offset(friday, 0) == friday
    assert cal.offset(dt.date(1995, 3, 4), 0) == friday  # a Saturday: the session before
    assert cal.offset(dt.date(1995, 3, 4), 1) == monday
    assert cal.back(tuesday, 3) == [friday, monday, tuesday]
    assert cal.back(dt.date(1995, 3, 5), 2) == [dt.date(1995, 3, 2), friday]
    with pytest.raises(OutsideCalendarError):
        cal.offset(cal.first, -1)
    with pytest.raises(OutsideCalendarError):
        cal.back(cal.first, 2)


def test_decision_cutoff_and_run_time_follow_dst() -> None:
    winter, summer = dt.date(1995, 1, 10), dt.date(1995, 7, 10)
    # 20:00 New York is 01:00 UTC next day in winter (EST), 00:00 in summer (EDT).
    assert timeline.decision_cutoff(winter) == dt.datetime(1995, 1, 11, 1, tzinfo=dt.UTC)
    assert timeline.decision_cutoff(summer) == dt.datetime(1995, 7, 11, 0, tzinfo=dt.UTC)
    assert timeline.run_time(winter) == dt.datetime(1995, 1, 11, 0, tzinfo=dt.UTC)
    assert timeline.run_time(summer) == dt.datetime(1995, 7, 10, 23, tzinfo=dt.UTC)
    for day in (winter, summer):
        local = timeline.decision_cutoff(day).astimezone(NY)
        assert (local.date(), local.time()) == (day, dt.time(20, 0))
    assert timeline.decision_cutoffs([winter, summer]) == [
        timeline.decision_cutoff(winter),
        timeline.decision_cutoff(summer),
    ]


def test_cutoffs_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHAFACTORY_DECISION_CUTOFF", "20:30")
    monkeypatch.setenv("ALPHAFACTORY_RUN_TIME", "18:45")
    get_settings.cache_clear()
    day = dt.date(1995, 7, 10)
    assert timeline.decision_cutoff(day).astimezone(NY).time() == dt.time(20, 30)
    assert timeline.run_time(day).astimezone(NY).time() == dt.time(18, 45)


def test_latest_all_dates_and_clocks() -> None:
    cal = trading_calendar()
    assert LATEST.tzinfo is not None and timeline.decision_cutoff(cal.last) < LATEST
    assert ALL_DATES[0] < cal.first and ALL_DATES[1] > cal.last
    at = dt.datetime(1995, 7, 10, 12, tzinfo=dt.UTC)
    assert timeline.fixed_clock(at)() == at
    assert timeline.system_clock().tzinfo is not None
    with pytest.raises(ValueError, match="timezone-aware"):
        timeline.fixed_clock(dt.datetime(1995, 7, 10))


def test_unknown_calendar_is_a_clear_error() -> None:
    with pytest.raises(AlphaFactoryError, match="unknown exchange calendar 'NOPE'"):
        trading_calendar("NOPE")
