"""ExchangeCalendarTimetable: one run per XNYS session, contiguous intervals, round trip."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from datetime import date, time

import pendulum
import pytest
from airflow.timetables.base import DataInterval, TimeRestriction

from pipelines.orchestration.timetable import ExchangeCalendarTimetable, session_of

pytestmark = pytest.mark.unit

NY = "America/New_York"


@pytest.fixture(scope="module")
def tt() -> ExchangeCalendarTimetable:
    return ExchangeCalendarTimetable(calendar="XNYS", run_at=time(19, 0), tz=NY)


def ny(y: int, m: int, d: int, hh: int = 19, mm: int = 0) -> pendulum.DateTime:
    return pendulum.datetime(y, m, d, hh, mm, tz=NY).in_timezone("UTC")


def schedule(
    tt: ExchangeCalendarTimetable, start: pendulum.DateTime, end: pendulum.DateTime
) -> list[DataInterval]:
    """Every interval the scheduler would create with catchup between start and end."""
    restriction = TimeRestriction(earliest=start, latest=end, catchup=True)
    out: list[DataInterval] = []
    last: DataInterval | None = None
    while info := tt.next_dagrun_info(last_automated_data_interval=last, restriction=restriction):
        assert info.data_interval is not None
        out.append(info.data_interval)
        last = info.data_interval
        assert len(out) < 400
    return out


def test_one_run_per_session_no_weekends_no_holidays(tt: ExchangeCalendarTimetable) -> None:
    runs = schedule(tt, ny(2024, 1, 1, 0), ny(2024, 12, 31, 23))
    sessions = [tt.session_of(iv.end) for iv in runs]
    assert len(sessions) == len(set(sessions)) == 252  # XNYS sessions in 2024
    assert all(d.weekday() < 5 for d in sessions)
    for holiday in (date(2024, 7, 4), date(2024, 11, 28), date(2024, 12, 25), date(2024, 1, 1)):
        assert holiday not in sessions
    assert {date(2024, 7, 3), date(2024, 7, 5), date(2024, 11, 29)} <= set(sessions)


def test_intervals_are_contiguous_and_end_at_run_time(tt: ExchangeCalendarTimetable) -> None:
    runs = schedule(tt, ny(2024, 1, 1, 0), ny(2024, 12, 31, 23))
    for prev, cur in itertools.pairwise(runs):
        assert cur.start == prev.end
    for iv in runs:
        local = iv.end.in_timezone(NY)
        assert (local.hour, local.minute) == (19, 0)  # across both DST changes


def test_interval_across_a_holiday(tt: ExchangeCalendarTimetable) -> None:
    last = tt.data_interval_for(date(2024, 7, 3))
    info = tt.next_dagrun_info(
        last_automated_data_interval=last,
        restriction=TimeRestriction(earliest=ny(2024, 1, 2), latest=None, catchup=True),
    )
    assert info is not None
    assert info.data_interval == DataInterval(ny(2024, 7, 3), ny(2024, 7, 5))
    assert info.run_after == ny(2024, 7, 5)
    # Airflow 3 core: a scheduled run's logical date is its interval start.
    assert info.logical_date == ny(2024, 7, 3)
    assert session_of(info.data_interval.end) == date(2024, 7, 5)


def test_interval_across_a_weekend_and_dst_change(tt: ExchangeCalendarTimetable) -> None:
    # 2024-03-10 (Sunday) is the US spring-forward day: 23:00Z before, 00:00Z+1 in winter.
    iv = tt.data_interval_for(date(2024, 3, 11))
    assert iv.start == pendulum.datetime(2024, 3, 9, 0, 0, tz="UTC")  # Fri 8 Mar 19:00 EST
    assert iv.end == pendulum.datetime(2024, 3, 11, 23, 0, tz="UTC")  # Mon 11 Mar 19:00 EDT


def test_first_run_honours_start_date(tt: ExchangeCalendarTimetable) -> None:
    restriction = TimeRestriction(earliest=ny(2024, 7, 4, 0), latest=None, catchup=True)
    info = tt.next_dagrun_info(last_automated_data_interval=None, restriction=restriction)
    assert info is not None and info.run_after == ny(2024, 7, 5)
    # A start date exactly at a run time includes that run; one minute later skips it.
    exact = TimeRestriction(earliest=ny(2024, 7, 3), latest=None, catchup=True)
    info = tt.next_dagrun_info(last_automated_data_interval=None, restriction=exact)
    assert info is not None and info.run_after == ny(2024, 7, 3)
    late = TimeRestriction(earliest=ny(2024, 7, 3, 19, 1), latest=None, catchup=True)
    info = tt.next_dagrun_info(last_automated_data_interval=None, restriction=late)
    assert info is not None and info.run_after == ny(2024, 7, 5)


def test_end_date_stops_scheduling(tt: ExchangeCalendarTimetable) -> None:
    restriction = TimeRestriction(earliest=ny(2024, 7, 1), latest=ny(2024, 7, 5), catchup=True)
    runs = schedule(tt, ny(2024, 7, 1), ny(2024, 7, 5))
    assert [tt.session_of(iv.end) for iv in runs] == [
        date(2024, 7, 1),
        date(2024, 7, 2),
        date(2024, 7, 3),
        date(2024, 7, 5),
    ]
    info = tt.next_dagrun_info(last_automated_data_interval=runs[-1], restriction=restriction)
    assert info is None


def _frozen_now(monkeypatch: pytest.MonkeyPatch, instant: pendulum.DateTime) -> None:
    monkeypatch.setattr(pendulum, "now", lambda tz=None: instant.in_timezone(tz or "UTC"))


def test_catchup_off_runs_only_the_latest_due_session(
    tt: ExchangeCalendarTimetable, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Saturday 2024-07-06 noon: the latest due session is Friday 5 July.
    _frozen_now(monkeypatch, ny(2024, 7, 6, 12))
    restriction = TimeRestriction(earliest=ny(2024, 1, 2), latest=None, catchup=False)
    info = tt.next_dagrun_info(last_automated_data_interval=None, restriction=restriction)
    assert info is not None and info.run_after == ny(2024, 7, 5)
    # An old last run does not make it backfill the gap either.
    info = tt.next_dagrun_info(
        last_automated_data_interval=tt.data_interval_for(date(2024, 6, 3)), restriction=restriction
    )
    assert info is not None and info.run_after == ny(2024, 7, 5)
    # Once that run exists, the next is Monday's, in the future.
    info = tt.next_dagrun_info(
        last_automated_data_interval=tt.data_interval_for(date(2024, 7, 5)), restriction=restriction
    )
    assert info is not None and info.run_after == ny(2024, 7, 8)


def test_catchup_off_with_future_start_date(
    tt: ExchangeCalendarTimetable, monkeypatch: pytest.MonkeyPatch
) -> None:
    _frozen_now(monkeypatch, ny(2024, 7, 6, 12))
    restriction = TimeRestriction(earliest=ny(2024, 9, 1), latest=None, catchup=False)
    info = tt.next_dagrun_info(last_automated_data_interval=None, restriction=restriction)
    assert info is not None and info.run_after == ny(2024, 9, 3)  # 2 Sep is Labor Day


def test_catchup_on_backfills_every_session(
    tt: ExchangeCalendarTimetable, monkeypatch: pytest.MonkeyPatch
) -> None:
    _frozen_now(monkeypatch, ny(2024, 7, 6, 12))
    restriction = TimeRestriction(earliest=ny(2024, 6, 28, 0), latest=None, catchup=True)
    info = tt.next_dagrun_info(last_automated_data_interval=None, restriction=restriction)
    assert info is not None and info.run_after == ny(2024, 6, 28)


def test_manual_run_gets_the_latest_complete_session(tt: ExchangeCalendarTimetable) -> None:
    # Triggered on the holiday: Wednesday 3 July's interval.
    assert tt.infer_manual_data_interval(run_after=ny(2024, 7, 4, 10)) == tt.data_interval_for(
        date(2024, 7, 3)
    )
    # Before the run time on a session day: the previous session.
    assert tt.infer_manual_data_interval(run_after=ny(2024, 7, 5, 18, 59)) == tt.data_interval_for(
        date(2024, 7, 3)
    )
    # At the run time exactly: that session's interval, same as the scheduled run's.
    assert tt.infer_manual_data_interval(run_after=ny(2024, 7, 5)) == tt.data_interval_for(
        date(2024, 7, 5)
    )


def test_serialization_round_trip(tt: ExchangeCalendarTimetable) -> None:
    other = ExchangeCalendarTimetable(calendar="XLON", run_at=time(18, 15, 30), tz="Europe/London")
    for t in (tt, other):
        data = t.serialize()
        assert data == json.loads(json.dumps(data))
        back = ExchangeCalendarTimetable.deserialize(data)
        assert back == t and back.summary == t.summary
    assert tt != other
    assert tt.summary == "XNYS sessions at 19:00 America/New_York"


def test_round_trip_through_airflow_serialization() -> None:
    """The encoder/decoder the DAG processor uses accept it once the plugin is registered."""
    from airflow.serialization.decoders import decode_timetable
    from airflow.serialization.encoders import encode_timetable

    tt = ExchangeCalendarTimetable(run_at=time(21, 30))
    encoded = encode_timetable(tt)
    assert encoded["__type"] == "pipelines.orchestration.timetable.ExchangeCalendarTimetable"
    assert decode_timetable(encoded) == tt


def test_plugin_registers_the_timetable() -> None:
    from pipelines.orchestration.plugin import AlphaFactoryPlugin

    assert ExchangeCalendarTimetable in AlphaFactoryPlugin.timetables


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError, match="time zone"):
        ExchangeCalendarTimetable(tz="Mars/Olympus")
    with pytest.raises(ValueError, match="naive"):
        ExchangeCalendarTimetable(run_at=time(19, tzinfo=dt.UTC))
    from airflow.exceptions import AirflowTimetableInvalid

    with pytest.raises(AirflowTimetableInvalid):
        ExchangeCalendarTimetable(calendar="NOPE").validate()
    with pytest.raises(ValueError, match="not a XNYS session"):
        ExchangeCalendarTimetable().data_interval_for(date(2024, 7, 4))


def test_history_back_to_1990(tt: ExchangeCalendarTimetable) -> None:
    """1995 is inside the calendar: a manual run there gets that session's interval."""
    interval = tt.infer_manual_data_interval(run_after=ny(1995, 3, 31, 19, 30))
    assert interval == DataInterval(start=ny(1995, 3, 30), end=ny(1995, 3, 31))
    assert tt.data_interval_for(date(1995, 3, 27)).start == ny(1995, 3, 24)  # over a weekend
    # A start_date before the calendar's first session schedules from the first session.
    first = TimeRestriction(earliest=ny(1985, 1, 2), latest=ny(1990, 1, 5), catchup=True)
    runs = schedule(tt, first.earliest, first.latest)  # type: ignore[arg-type]
    assert [tt.session_of(i.end) for i in runs] == [
        date(1990, 1, 2),
        date(1990, 1, 3),
        date(1990, 1, 4),
        date(1990, 1, 5),
    ]
    assert tt.latest_session_at_or_before(ny(1985, 1, 2)) is None


def test_defaults_come_from_settings() -> None:
    tt = ExchangeCalendarTimetable()
    assert (tt.calendar, tt.run_at) == ("XNYS", time(19, 0))
