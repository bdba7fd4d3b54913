"""Dates on the command line: ``YYYY-MM-DD`` text to a date, checked against the calendar."""

from __future__ import annotations

import datetime as dt

import typer

from pipelines.timeline import DateRangeError, trading_calendar


def parse_date(value: str) -> dt.date:
    """``value`` as a date; a usage error (exit 2) when it is not ``YYYY-MM-DD``."""
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


def parse_session_date(value: str) -> dt.date:
    """:func:`parse_date`, then checked against the trading calendar's range: a date outside
    it raises :class:`~pipelines.timeline.OutsideCalendarError` (one line, exit 1)."""
    return trading_calendar().check(parse_date(value))


def parse_session(value: str) -> dt.date:
    """:func:`parse_session_date`, and a session: a weekend or holiday is refused naming
    the nearest sessions (:class:`~pipelines.timeline.NotASessionError`, one line)."""
    return trading_calendar().require_session(parse_session_date(value))


def parse_past_session(value: str, what: str = "date") -> dt.date:
    """:func:`parse_session` for a session that has happened: a future date is refused
    (the lake cannot know about it yet)."""
    return _not_future(parse_session(value), what)


def _not_future(day: dt.date, what: str) -> dt.date:
    today = dt.date.today()
    if day > today:
        raise DateRangeError(f"{what} {day} is in the future (today is {today})")
    return day


def _ordered(first: dt.date, last: dt.date) -> None:
    if last < first:
        raise DateRangeError(f"--end {last} is before --start {first}")


def parse_session_range(start: str, end: str) -> tuple[dt.date, dt.date]:
    """Two past sessions, ``start <= end``."""
    first = parse_past_session(start, "--start")
    last = parse_past_session(end, "--end")
    _ordered(first, last)
    return first, last


def parse_date_range(start: str, end: str) -> tuple[dt.date, dt.date, list[str]]:
    """The first and last sessions within the dates ``[start, end]`` (a range of dates, as a
    backtest's: a weekend or holiday at either end is not an error), with a note for each
    end that moved. A date outside the calendar, an ``end`` before ``start``, a future
    ``end`` or a range without a session is one line naming the dates."""
    cal = trading_calendar()
    first_day, last_day = parse_session_date(start), parse_session_date(end)
    _ordered(first_day, last_day)
    _not_future(last_day, "--end")
    first, last = cal.at_or_after(first_day), cal.at_or_before(last_day)
    if first is None or last is None or last < first:
        raise DateRangeError(f"no {cal.name} session from {first_day} to {last_day}")
    notes = []
    if first != first_day:
        notes.append(f"--start {first_day} is not a {cal.name} session: from {first}")
    if last != last_day:
        notes.append(f"--end {last_day} is not a {cal.name} session: through {last}")
    return first, last, notes
