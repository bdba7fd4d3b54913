"""Dates on the command line: ``YYYY-MM-DD`` text to a date, checked against the calendar."""

from __future__ import annotations

import datetime as dt

import typer

from pipelines.timeline import trading_calendar


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
