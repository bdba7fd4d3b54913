"""One Airflow run per exchange trading session, at a fixed local time after the close.

Mapping of sessions to runs (Airflow 3 semantics, see ``docs`` in the module's tests):

* A run for session ``D`` is **created at** (``run_after``) ``D``'s run time: ``run_at`` on
  ``D`` in ``tz`` (the ``ALPHAFACTORY_RUN_TIME`` setting, 19:00 America/New_York by
  default), i.e. after the close.
* Its **data interval** is ``(run time of the previous session, run time of D]``: across a
  weekend or a holiday the interval simply stretches (Friday 19:00 → Monday 19:00), so
  consecutive runs tile time without gaps or overlaps.
* Its **logical date** is the data interval *start*. Airflow 3 core derives a scheduled
  run's logical date from ``DagRunInfo.data_interval.start``; a timetable cannot choose it
  (``CronDataIntervalTimetable`` and ``CronTriggerTimetable(interval=…)`` behave the same).
  The run id (``scheduled__<run_after>``) names ``D``'s run time, and tasks take the session
  they process from ``data_interval_end`` — use :func:`session_of`.
* A **manual** run (UI trigger, ``dags test``) at instant ``T`` gets the interval of the latest
  session whose run time is ``≤ T``, the same interval the scheduled run for that session
  has. ``dags test DAG <D's run time>`` therefore reproduces the scheduled run for ``D``.
* **catchup=True**: one run per session from the first session whose run time is
  ``≥ start_date``. **catchup=False**: missed sessions are skipped, except the most recent
  one whose run time has passed (Airflow's own convention for cron schedules).

Sessions come from :func:`pipelines.timeline.trading_calendar` (1990 to two years ahead),
which imports ``exchange_calendars`` (and pandas) lazily, on the first scheduling question,
so parsing a DAG file that uses this timetable stays cheap. Instants before the calendar's
start or after its end are clamped to it (a ``start_date`` before 1990 schedules from the
first session).
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pendulum
from airflow.timetables.base import DagRunInfo, DataInterval, Timetable

from pipelines.timeline import TradingCalendar, trading_calendar

if TYPE_CHECKING:
    from airflow.timetables.base import TimeRestriction
    from pendulum import DateTime

DEFAULT_TZ = "America/New_York"


class ExchangeCalendarTimetable(Timetable):
    """Exactly one run per trading session of ``calendar``, at ``run_at`` local time ``tz``.

    Promises (see the module docstring for the full mapping): no run on a weekend or an
    exchange holiday; consecutive scheduled runs have contiguous data intervals
    ``(previous session's run time, this session's run time]``; instances round-trip through
    :meth:`serialize` / :meth:`deserialize` and compare equal when their parameters do.
    """

    periodic = True
    can_be_scheduled = True

    def __init__(
        self,
        calendar: str | None = None,
        run_at: time | None = None,
        tz: str = DEFAULT_TZ,
    ) -> None:
        if calendar is None or run_at is None:
            from pipelines.config import get_settings  # settings only when defaulting

            settings = get_settings()
            calendar = calendar or settings.calendar
            run_at = run_at or settings.run_time
        if run_at.tzinfo is not None:
            raise ValueError("run_at must be a naive wall-clock time; pass the zone as tz")
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {tz!r}") from exc
        self.calendar = calendar
        self.run_at = run_at
        self.tz = tz
        self.description = self.summary

    # --- identity -----------------------------------------------------------------------

    @property
    def summary(self) -> str:
        """Short text for the UI, e.g. ``XNYS sessions at 19:00 America/New_York``."""
        return f"{self.calendar} sessions at {self.run_at.isoformat(timespec='minutes')} {self.tz}"

    def serialize(self) -> dict[str, Any]:
        """JSON-safe parameters; :meth:`deserialize` rebuilds an equal timetable."""
        return {
            "calendar": self.calendar,
            "run_at": self.run_at.isoformat(),
            "tz": self.tz,
        }

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> ExchangeCalendarTimetable:
        """Inverse of :meth:`serialize`."""
        return cls(
            calendar=data["calendar"],
            run_at=time.fromisoformat(data["run_at"]),
            tz=data["tz"],
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ExchangeCalendarTimetable):
            return NotImplemented
        return self.serialize() == other.serialize()

    def __hash__(self) -> int:
        return hash((self.calendar, self.run_at, self.tz))

    def __repr__(self) -> str:
        return (
            f"ExchangeCalendarTimetable(calendar={self.calendar!r}, "
            f"run_at={self.run_at!r}, tz={self.tz!r})"
        )

    def validate(self) -> None:
        """Fail DAG bagging (not scheduling, later) when the calendar name is unknown."""
        from airflow.exceptions import AirflowTimetableInvalid

        try:
            self._sessions()
        except Exception as exc:
            raise AirflowTimetableInvalid(
                f"exchange calendar {self.calendar!r} is not available: {exc}"
            ) from exc

    # --- session <-> instant --------------------------------------------------------------

    def _sessions(self) -> TradingCalendar:
        return trading_calendar(self.calendar)

    def run_time(self, session: date) -> DateTime:
        """The instant (UTC) the run for ``session`` is due: ``run_at`` on that date in ``tz``."""
        local = pendulum.datetime(
            session.year,
            session.month,
            session.day,
            self.run_at.hour,
            self.run_at.minute,
            self.run_at.second,
            self.run_at.microsecond,
            tz=self.tz,
        )
        return local.in_timezone("UTC")

    def session_of(self, instant: datetime) -> date:
        """The session whose run time is ``instant``'s local date in ``tz``.

        Use it on ``data_interval_end`` inside a task to know which session the run is for.
        """
        return pendulum.instance(instant).in_timezone(self.tz).date()

    def is_session(self, d: date) -> bool:
        """Whether ``d`` is a trading session of the calendar."""
        return self._sessions().is_session(d)

    def latest_session_at_or_before(self, instant: datetime) -> date | None:
        """The latest session whose run time is ``≤ instant``."""
        sessions = self._sessions()
        local_day = min(self.session_of(instant), sessions.end)
        if local_day < sessions.start:
            return None
        candidate = sessions.at_or_before(local_day)
        if candidate is not None and self.run_time(candidate) > instant:
            candidate = sessions.previous(candidate)
        return candidate

    def first_session_at_or_after(self, instant: datetime) -> date | None:
        """The first session whose run time is ``≥ instant``."""
        sessions = self._sessions()
        local_day = max(self.session_of(instant), sessions.start)
        if local_day > sessions.end:
            return None
        candidate = sessions.at_or_after(local_day)
        if candidate is not None and self.run_time(candidate) < instant:
            candidate = sessions.next(candidate)
        return candidate

    def data_interval_for(self, session: date) -> DataInterval:
        """``(run time of the previous session, run time of session]``.

        The calendar's first session gets a zero-length interval (there is no previous one).
        """
        sessions = self._sessions()
        if not sessions.is_session(session):
            raise ValueError(f"{session} is not a {self.calendar} session")
        end = self.run_time(session)
        previous = sessions.previous(session)
        start = self.run_time(previous) if previous is not None else end
        return DataInterval(start=start, end=end)

    # --- Timetable protocol ---------------------------------------------------------------

    def infer_manual_data_interval(self, *, run_after: DateTime) -> DataInterval:
        """The interval of the latest session whose run time is ``≤ run_after``."""
        session = self.latest_session_at_or_before(run_after)
        if session is None:
            raise ValueError(f"no {self.calendar} session at or before {run_after}")
        return self.data_interval_for(session)

    def next_dagrun_info(
        self,
        *,
        last_automated_data_interval: DataInterval | None,
        restriction: TimeRestriction,
    ) -> DagRunInfo | None:
        """The next session's run, honouring ``start_date``/``end_date``/``catchup``."""
        sessions = self._sessions()
        candidates: list[date] = []
        if last_automated_data_interval is not None:
            after = self.first_session_at_or_after(last_automated_data_interval.end)
            # The last run's end is itself a run time; move strictly past it.
            if after is not None and self.run_time(after) <= last_automated_data_interval.end:
                after = sessions.next(after)
            if after is None:
                return None
            candidates.append(after)
        elif restriction.earliest is not None:
            first = self.first_session_at_or_after(restriction.earliest)
            if first is None:
                return None
            candidates.append(first)
        if not restriction.catchup or not candidates:
            # Without catchup (or without a start date), skip every missed session except
            # the most recent one whose run time has already passed.
            latest_due = self.latest_session_at_or_before(pendulum.now("UTC"))
            if latest_due is not None:
                candidates.append(latest_due)
        if not candidates:
            return None
        session = max(candidates)
        interval = self.data_interval_for(session)
        if restriction.latest is not None and interval.end > restriction.latest:
            return None
        return DagRunInfo.interval(start=interval.start, end=interval.end)


def session_of(data_interval_end: datetime, tz: str = DEFAULT_TZ) -> date:
    """The trading session a run is for, from its ``data_interval_end`` (see module doc)."""
    return pendulum.instance(data_interval_end).in_timezone(tz).date()
