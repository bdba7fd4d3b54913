"""Airflow 3's own backfill over the project's timetable, asked for in session dates.

``alphafactory airflow backfill DAG --start D1 --end D2`` wraps ``airflow backfill create``
on the embedded home. What it adds, and why:

* **Session dates in, Airflow instants out.** Airflow's window is a pair of instants and it
  keeps every run the DAG's timetable yields whose *run time* (data interval end, 19:00 New
  York) lies inside it (:meth:`ExchangeCalendarTimetable.next_dagrun_info` with
  ``catchup=True``). A window of bare dates (midnight UTC) would silently drop the last
  session, so :func:`backfill_window` passes the first and last session's run times.
* **Sessions out.** Airflow lists runs by *logical date*, which for this timetable is the
  data interval *start* — the previous session's run time (see
  :mod:`pipelines.orchestration.timetable`). :func:`plan` maps each logical date Airflow
  reports back to the session it processes, and refuses one it cannot map (it would mean
  Airflow and the timetable disagree).
* **The DAG is serialized first** (``airflow dags reserialize``): Airflow 3 backfills the
  serialized DAG in the metadata DB, which only a DAG processor writes otherwise.

The runs themselves are executed by the scheduler, and only while the DAG is unpaused
(:func:`unpause`); :func:`wait_for_runs` polls the runs' states (:func:`run_states`) until
every run of the backfill has finished (the CLI's ``--wait`` unpauses the DAG and starts the
scheduler, DAG processor and API server for that long).

Standard library and settings only at import time; Airflow runs in child processes, as
for :func:`pipelines.orchestration.airflow_env.run_dag_test`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pipelines.errors import AlphaFactoryError
from pipelines.orchestration.airflow_env import AirflowEnv, airflow_cli, ensure_airflow_db
from pipelines.timeline import run_time, trading_calendar

#: ``airflow backfill create --reprocess-behavior`` choices.
REPROCESS = ("none", "completed", "failed")
#: Run states after which a run does nothing more.
FINISHED = frozenset({"success", "failed"})

# A logical date cell of ``airflow backfill create --dry-run``'s table,
# e.g. ``2019-07-01 23:00:00+00:00`` (Airflow prints aware datetimes with ``str``).
_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[+-]\d{2}:\d{2}|Z)")


class BackfillError(AlphaFactoryError, RuntimeError):
    """A backfill Airflow refused, or whose runs did not finish in time."""


@dataclass(frozen=True)
class BackfillRun:
    """One run of a backfill: the session it processes and Airflow's logical date for it."""

    session: dt.date
    logical_date: dt.datetime
    #: ``(previous session's run time, this session's run time]``.
    data_interval: tuple[dt.datetime, dt.datetime]


@dataclass(frozen=True)
class BackfillPlan:
    """What ``airflow backfill create`` reported for a window: the runs it (would) create."""

    dag_id: str
    window: tuple[dt.datetime, dt.datetime]
    runs: tuple[BackfillRun, ...]
    dry_run: bool
    output: str

    @property
    def sessions(self) -> list[dt.date]:
        return [r.session for r in self.runs]


def backfill_window(start: dt.date, end: dt.date) -> tuple[list[dt.date], dt.datetime, dt.datetime]:
    """The sessions in ``[start, end]`` and the instants to give Airflow for them.

    Raises :class:`~pipelines.timeline.OutsideCalendarError` (one line) for a date outside
    the calendar and :class:`BackfillError` for a window without a session.
    """
    if end < start:
        raise BackfillError(f"--end {end} is before --start {start}")
    sessions = trading_calendar().sessions(start, end)
    if not sessions:
        raise BackfillError(f"no trading session between {start} and {end}")
    return sessions, run_time(sessions[0]), run_time(sessions[-1])


def expected_runs(sessions: Sequence[dt.date]) -> list[BackfillRun]:
    """The runs the project's timetable yields for ``sessions``: one per session, its
    logical date the previous session's run time (the data interval start)."""
    cal = trading_calendar()
    runs = []
    for session in sessions:
        end = run_time(session)
        previous = cal.previous(session)
        begin = run_time(previous) if previous is not None else end
        runs.append(BackfillRun(session=session, logical_date=begin, data_interval=(begin, end)))
    return runs


def parse_logical_dates(output: str) -> list[dt.datetime]:
    """The logical dates in ``airflow backfill create --dry-run``'s "Runs to be attempted"
    table (the parameters echoed above it are skipped), in order."""
    _, sep, table = output.partition("Runs to be attempted")
    if not sep:
        raise BackfillError(f"unexpected output of airflow backfill create --dry-run:\n{output}")
    return [
        dt.datetime.fromisoformat(m.group(0).replace("Z", "+00:00")).astimezone(dt.UTC)
        for m in _INSTANT.finditer(table)
    ]


def _airflow_args(
    dag_id: str,
    window: tuple[dt.datetime, dt.datetime],
    dry_run: bool,
    reprocess: str | None,
    max_active_runs: int | None,
    conf: dict[str, Any] | None = None,
) -> list[str]:
    args = [
        "backfill",
        "create",
        "--dag-id",
        dag_id,
        "--from-date",
        window[0].isoformat(),
        "--to-date",
        window[1].isoformat(),
    ]
    if reprocess is not None:
        args += ["--reprocess-behavior", reprocess]
    if max_active_runs is not None:
        args += ["--max-active-runs", str(max_active_runs)]
    if conf:
        args += ["--dag-run-conf", json.dumps(conf)]
    if dry_run:
        args.append("--dry-run")
    return args


def create_backfill(
    env: AirflowEnv,
    dag_id: str,
    start: dt.date,
    end: dt.date,
    *,
    dry_run: bool = False,
    reprocess: str | None = None,
    max_active_runs: int = 1,
    timeout: float = 600,
    conf: dict[str, Any] | None = None,
) -> BackfillPlan:
    """Create (or with ``dry_run`` only list) Airflow's backfill of ``dag_id`` over the
    sessions ``start..end``.

    The runs are the sessions of the window Airflow has no run for yet (``reprocess``
    ``completed``/``failed`` also re-runs those); they are listed through a dry run, so a
    real backfill reports exactly what it queued. ``max_active_runs`` defaults to 1:
    Airflow's backfill ignores the DAG's own ``max_active_runs`` (its default is 10), and
    sessions run concurrently load out of order — measured: 5 July 2019's prices were
    quarantined against a security master whose 3 July delivery was still loading. Raises :class:`BackfillError` with
    Airflow's message when it refuses (unknown DAG, another backfill of the DAG running,
    nothing to run).
    """
    if reprocess is not None and reprocess not in REPROCESS:
        raise BackfillError(f"--reprocess {reprocess!r}: expected one of {', '.join(REPROCESS)}")
    sessions, first, last = backfill_window(start, end)
    ensure_airflow_db(env)
    # Airflow 3 backfills the DAG as serialized in the DB; without a DAG processor running,
    # only this writes (or refreshes) it.
    airflow_cli(env, "dags", "reserialize", timeout=timeout)
    listing = airflow_cli(
        env,
        *_airflow_args(dag_id, (first, last), True, reprocess, max_active_runs, conf),
        timeout=timeout,
    )
    output = listing.stdout + listing.stderr
    by_logical = {r.logical_date: r for r in expected_runs(sessions)}
    runs = []
    for logical in parse_logical_dates(listing.stdout):
        if logical not in by_logical:
            raise BackfillError(
                f"Airflow's backfill of {dag_id} lists logical date {logical.isoformat()}, "
                f"which is no session's interval start in {start}..{end}: is {dag_id} on the "
                "exchange-calendar timetable?"
            )
        runs.append(by_logical[logical])
    if not dry_run:
        if not runs:
            raise BackfillError(
                f"no runs to create for {dag_id} in {start}..{end}: every session already "
                "has a run (use --reprocess failed|completed to run them again)"
            )
        created = airflow_cli(
            env,
            *_airflow_args(dag_id, (first, last), False, reprocess, max_active_runs, conf),
            timeout=timeout,
            check=False,
        )
        output += created.stdout + created.stderr
        if created.returncode != 0:
            tail = "\n".join((created.stderr or created.stdout).strip().splitlines()[-5:])
            raise BackfillError(f"airflow backfill create {dag_id} failed:\n{tail}")
    return BackfillPlan(dag_id, (first, last), tuple(runs), dry_run, output)


def unpause(env: AirflowEnv, dag_id: str) -> None:
    """Unpause ``dag_id``: Airflow 3.3's scheduler starts no run of a paused DAG, backfill
    runs included (new DAGs are paused at creation). Its schedule resumes with it: with
    ``catchup=False`` the scheduler also creates the run of the latest due session."""
    airflow_cli(env, "dags", "unpause", dag_id, timeout=300)


def _utc(value: str) -> dt.datetime:
    instant = dt.datetime.fromisoformat(value)
    return (instant if instant.tzinfo else instant.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


def run_states(env: AirflowEnv, dag_id: str) -> dict[dt.datetime, tuple[str, str]]:
    """``{logical date: (run id, state)}`` of ``dag_id``'s backfill runs.

    On the embedded SQLite DB this is one read-only query of Airflow's ``dag_run`` table;
    elsewhere ``airflow dags list-runs``. Why: each ``airflow`` command costs seconds of
    CPU to import Airflow, and polling with it every few seconds starved the scheduler's
    own tasks on a 2-core machine.
    """
    url = env.values["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    if url.startswith("sqlite:///"):
        return _sqlite_run_states(url.removeprefix("sqlite:///"), dag_id)
    proc = airflow_cli(env, "dags", "list-runs", dag_id, "--output", "json", timeout=300)
    text = proc.stdout.strip()
    # The JSON document is the output's last line; Airflow may log lines before it.
    rows = json.loads(text.splitlines()[-1]) if text else []
    out: dict[dt.datetime, tuple[str, str]] = {}
    for row in rows:
        if not str(row.get("run_id", "")).startswith("backfill__") or not row.get("logical_date"):
            continue
        out[_utc(row["logical_date"])] = (row["run_id"], str(row["state"]))
    return out


def _sqlite_run_states(path: str, dag_id: str) -> dict[dt.datetime, tuple[str, str]]:
    uri = f"file:{path}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
        rows = db.execute(
            "SELECT logical_date, run_id, state FROM dag_run "
            "WHERE dag_id = ? AND run_type = 'backfill' AND logical_date IS NOT NULL",
            (dag_id,),
        ).fetchall()
    return {_utc(str(logical)): (str(run_id), str(state)) for logical, run_id, state in rows}


def wait_for_runs(
    env: AirflowEnv,
    plan: BackfillPlan,
    *,
    timeout: float = 3600,
    poll: float = 10.0,
    alive: Callable[[], None] | None = None,
    progress: Callable[[dict[dt.date, str]], None] | None = None,
) -> dict[dt.date, str]:
    """Poll until every run of ``plan`` has finished; return ``{session: state}``.

    ``alive`` is called between polls (e.g. to raise when the scheduler died);
    ``progress`` receives the states whenever they change. Raises :class:`BackfillError`
    at ``timeout``.
    """
    deadline = time.monotonic() + timeout
    last: dict[dt.date, str] = {}
    while True:
        found = run_states(env, plan.dag_id)
        states = {
            r.session: found[r.logical_date][1] if r.logical_date in found else "not created"
            for r in plan.runs
        }
        if states != last and progress is not None:
            progress(states)
        last = states
        if all(s in FINISHED for s in states.values()):
            return states
        if time.monotonic() > deadline:
            raise BackfillError(
                f"backfill of {plan.dag_id} not finished after {timeout:.0f}s: "
                + ", ".join(f"{d}={s}" for d, s in sorted(states.items()))
            )
        if alive is not None:
            alive()
        time.sleep(poll)
