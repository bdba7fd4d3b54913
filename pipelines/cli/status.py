"""``alphafactory status``: the data engineer's morning view.

Freshness and last validation of every table, open quarantines, and the last DAG runs —
from Airflow's REST API when an API server answers, else from the metadata DB through
``airflow dags list-runs``.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import urllib.request
from dataclasses import dataclass
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.console import Console

from pipelines.cli.output import literal, print_records

console = Console()
DAG_IDS = (
    "vendor_ingest",
    "daily_research",
    "model_retrain",
    "portfolio_rebalance",
    "lake_maintenance",
    "leak_audit",
)


def table_freshness(lake: Any) -> list[dict[str, Any]]:
    """Per declared table: rows, latest valid date, latest knowledge time, last commit."""
    import pyarrow.compute as pc

    from pipelines.lake.catalog import all_tables

    out = []
    for name in sorted(all_tables()):
        dt_ = lake.table(name)
        if dt_ is None:
            out.append({"table": name, "rows": 0})
            continue
        data = lake.dataset(name).to_table(columns=["valid_date", "known_at"])
        status = lake.status(name)
        out.append(
            {
                "table": name,
                "rows": data.num_rows,
                "latest valid": str(pc.max(data.column("valid_date")).as_py() or ""),
                "latest known_at": str(pc.max(data.column("known_at")).as_py() or "")[:16],
                "last commit": str(status.last_commit or "")[:19],
            }
        )
    return out


def last_validation(lake: Any) -> dict[str, dict[str, Any]]:
    """Per target dataset: date, rules evaluated, failures, outcome of the latest batch."""
    if lake.table("validation_results") is None:
        return {}
    frame = lake.dataset("validation_results").to_table().to_pandas()
    out: dict[str, dict[str, Any]] = {}
    for dataset, group in frame.groupby("dataset"):
        last = group[group["valid_date"] == group["valid_date"].max()]
        outcomes = sorted(set(last["outcome"].dropna().astype(str)))
        out[str(dataset)] = {
            "date": str(last["valid_date"].max()),
            "rules": len(last),
            "failed": int((~last["success"].astype(bool)).sum()),
            "outcome": ",".join(outcomes),
        }
    return out


#: ``ExchangeCalendarTimetable``'s zone (``pipelines.orchestration.timetable.DEFAULT_TZ``):
#: importing the timetable loads Airflow (≈ 8 s), too slow for a status line.
INGEST_TZ = "America/New_York"


@dataclass(frozen=True)
class IngestSchedule:
    """``vendor_ingest``'s schedule without Airflow: one run per session of ``calendar`` at
    ``run_at`` local time (what ``ExchangeCalendarTimetable`` does; a test holds them equal)."""

    calendar: Any
    run_at: dt.time
    tz: str = INGEST_TZ

    @classmethod
    def from_settings(cls) -> IngestSchedule:
        from pipelines.config import get_settings
        from pipelines.timeline import trading_calendar

        s = get_settings()
        return cls(trading_calendar(s.calendar), s.run_time)

    def run_time(self, session: dt.date) -> dt.datetime:
        """The instant (UTC) ``session``'s run is due."""
        local = dt.datetime.combine(session, self.run_at, ZoneInfo(self.tz))
        return local.astimezone(dt.UTC)

    def latest_due(self, now: dt.datetime) -> dt.date | None:
        """The latest session whose run time is ``≤ now``."""
        cal = self.calendar
        local_day = min(now.astimezone(ZoneInfo(self.tz)).date(), cal.end)
        if local_day < cal.start:
            return None
        candidate: dt.date | None = cal.at_or_before(local_day)
        if candidate is not None and self.run_time(candidate) > now:
            candidate = cal.previous(candidate)
        return candidate


#: Feed states, see :func:`feed_freshness`.
FRESH, DUE, LATE, STALE = "fresh", "due", "late", "stale"


def feed_freshness(
    lake: Any, now: dt.datetime | None = None, deadline_s: float | None = None
) -> list[dict[str, Any]]:
    """Per declared feed, its state against ``vendor_ingest``'s schedule at ``now``.

    The expected session is the latest whose run time has passed. A feed is ``fresh``
    when it loaded that session, ``due`` when it did not yet but the ingest deadline
    (``deadline_s`` after the run time) has not passed, ``late`` past the deadline (or
    when a deadline alert recorded it late) while one session behind, ``stale`` when it is
    further behind.
    """
    import pyarrow.compute as pc

    from pipelines.config import get_settings
    from pipelines.ingest.feed_index import feed_index
    from pipelines.orchestration.deadlines import last_late

    now = now or dt.datetime.now(dt.UTC)
    deadline = dt.timedelta(
        seconds=get_settings().ingest_deadline_seconds if deadline_s is None else deadline_s
    )
    schedule = IngestSchedule.from_settings()
    calendar = schedule.calendar
    expected = schedule.latest_due(now)
    latest: dict[str, dt.date] = {}
    if lake.table("ingest_runs") is not None:
        runs = lake.dataset("ingest_runs").to_table(columns=["feed", "status", "valid_date"])
        runs = runs.filter(pc.invert(pc.equal(runs.column("status"), "quarantined")))
        for feed, day in zip(
            runs.column("feed").to_pylist(), runs.column("valid_date").to_pylist(), strict=True
        ):
            if day is not None and (feed not in latest or day > latest[feed]):
                latest[feed] = day
    alerted = last_late(expected) if expected else {}
    out = []
    for entry in feed_index():
        last = latest.get(entry.name)
        behind = (
            0
            if expected is None or (last is not None and last >= expected)
            else len(calendar.sessions(last + dt.timedelta(days=1), expected))
            if last is not None
            else None
        )
        if behind == 0:
            state = FRESH
        elif behind == 1 and expected is not None:
            past = now > schedule.run_time(expected) + deadline or entry.name in alerted
            state = LATE if past else DUE
        else:
            state = STALE
        out.append(
            {
                "feed": entry.name,
                "table": entry.table,
                "state": state,
                "last": last.isoformat() if last else None,
                "expected": expected.isoformat() if expected else None,
                "behind": behind,
            }
        )
    return out


def open_quarantines(lake: Any) -> Any:
    """Records still holding data back, as ``quarantine list --open`` shows them (a record a
    newer load superseded is not open)."""
    import pandas as pd

    from pipelines.ingest import quarantine

    if lake.table("quarantine") is None:
        return pd.DataFrame()
    return pd.DataFrame(quarantine.list_records(lake, "open"))


def _api_token(base: str) -> str | None:
    """A bearer token from the embedded home's simple auth manager (its generated admin
    password), or None when there is none to use."""
    from pipelines.orchestration.airflow_env import airflow_environment
    from pipelines.orchestration.ui import ADMIN_USER, PASSWORDS_FILE

    try:
        passwords = json.loads((airflow_environment().home / PASSWORDS_FILE).read_text())
        body = json.dumps({"username": ADMIN_USER, "password": passwords[ADMIN_USER]}).encode()
        req = urllib.request.Request(
            f"{base}/auth/token", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            return str(json.loads(resp.read())["access_token"])
    except (OSError, KeyError, ValueError):
        return None


def _runs_from_sqlite(db: Any, limit: int) -> list[dict[str, Any]]:
    """The last ``limit`` runs of each DAG read straight from the embedded SQLite metadata
    DB, read-only (issue 18: one ``airflow dags list-runs`` per DAG made status take 32 s)."""
    runs: list[dict[str, Any]] = []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        for dag_id in DAG_IDS:
            rows = conn.execute(
                "SELECT run_id, state, run_after, logical_date FROM dag_run WHERE dag_id = ? "
                "ORDER BY run_after DESC LIMIT ?",
                (dag_id, limit),
            ).fetchall()
            runs += [
                {"dag_id": dag_id, "run_id": r, "state": st, "run_after": ra, "logical_date": ld}
                for r, st, ra, ld in rows
            ]
    finally:
        conn.close()
    return runs


def dag_runs(limit: int = 3) -> tuple[str, list[dict[str, Any]]]:
    """(source, runs): the REST API when reachable (with the embedded home's token when
    it asks for one), else ``airflow dags list-runs``; the source says why it fell back."""
    import urllib.error

    from pipelines.config import get_settings
    from pipelines.orchestration.airflow_env import airflow_cli, airflow_environment

    base = get_settings().airflow_api_url.rstrip("/")
    runs: list[dict[str, Any]] = []
    token: str | None = None
    why = f"no API server at {base}"
    try:
        for dag_id in DAG_IDS:
            url = f"{base}/api/v2/dags/{dag_id}/dagRuns?limit={limit}&order_by=-run_after"
            for attempt in range(2):
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                try:
                    req = urllib.request.Request(url, headers=headers)
                    with urllib.request.urlopen(req, timeout=2) as resp:
                        body = json.loads(resp.read())
                    break
                except urllib.error.HTTPError as exc:
                    if exc.code in (401, 403) and attempt == 0 and token is None:
                        token = _api_token(base)
                        if token is not None:
                            continue
                    why = f"the API at {base} answered HTTP {exc.code}"
                    raise
            for r in body.get("dag_runs", []):
                runs.append(
                    {"dag_id": dag_id, **{k: r.get(k) for k in ("run_id", "state", "run_after")}}
                )
        return f"REST API {base}", runs
    except Exception:  # fall back to the metadata DB, saying why
        runs = []
    env = airflow_environment()
    if not env.db_path.is_file():
        return f"no Airflow metadata DB yet ({why})", []
    try:
        return f"metadata DB {env.db_path} ({why})", _runs_from_sqlite(env.db_path, limit)
    except sqlite3.Error:
        pass  # another schema: ask Airflow's CLI (≈ 5 s a DAG)
    for dag_id in DAG_IDS:
        proc = airflow_cli(env, "dags", "list-runs", dag_id, "-o", "json", timeout=120, check=False)
        if proc.returncode != 0:
            continue
        try:
            rows = json.loads(proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "[]")
        except json.JSONDecodeError:
            continue
        for r in rows[:limit]:
            runs.append(
                {
                    "dag_id": dag_id,
                    **{
                        k: r.get(k)
                        for k in ("run_id", "state", "run_after", "logical_date")
                        if k in r
                    },
                }
            )
    return f"metadata DB {env.db_path} ({why})", runs


def _print(title: str, rows: list[dict[str, Any]], optional: tuple[str, ...] = ()) -> None:
    print_records(console, rows, title, optional=optional)


def data_docs_index() -> str | None:
    """A browser's address of the Great Expectations Data Docs index, when one was written
    (:func:`pipelines.contracts.data_docs.data_docs_url`)."""
    from pipelines.contracts.data_docs import data_docs_url, index_written

    return data_docs_url() if index_written() else None


def _state_style(row: dict[str, Any]) -> str | None:
    return {LATE: "red", STALE: "red", DUE: "yellow"}.get(str(row.get("state")))


def status(
    runs: Annotated[bool, typer.Option(help="Also list the last DAG runs")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="JSON for scripts")] = False,
    at: Annotated[
        str | None,
        typer.Option(help="Judge feed freshness at this instant (ISO, UTC), not now"),
    ] = None,
) -> None:
    """Per feed fresh/due/late/stale against vendor_ingest's schedule, table freshness with
    the last validation and its Data Docs, open quarantines, the last leak audit and the
    last DAG runs."""
    from pipelines.audit.leaks import last_audit_line
    from pipelines.lake import Lake

    lake = Lake.from_settings()
    now = None
    if at:
        now = dt.datetime.fromisoformat(at)
        now = now.replace(tzinfo=dt.UTC) if now.tzinfo is None else now
    feeds = feed_freshness(lake, now)
    fresh = table_freshness(lake)
    checks = last_validation(lake)
    for row in fresh:
        check = checks.get(row["table"])
        row["last validation"] = (
            f"{check['date']}: {check['rules']} rules, {check['failed']} failed ({check['outcome']})"
            if check
            else ""
        )
    quarantined = open_quarantines(lake)
    q_cols = ["quarantine_id", "valid_date", "feed", "file_name", "rules", "message"]
    q_rows = [] if quarantined.empty else quarantined[q_cols].astype(str).to_dict("records")
    docs = data_docs_index()
    audit = last_audit_line(lake)
    source, run_rows = dag_runs() if runs else ("not asked", [])
    if as_json:
        body = {
            "feeds": feeds,
            "tables": fresh,
            "open_quarantines": q_rows,
            "data_docs": docs,
            "leak_audit": audit,
            "dag_runs": {"source": source, "runs": run_rows},
        }
        console.file.write(json.dumps(body, default=str, indent=1) + "\n")
        return
    print_records(
        console,
        feeds,
        "Feeds against vendor_ingest's schedule (last/expected session, sessions behind)",
        optional=("table",),
        style=_state_style,
    )
    _print(
        f"Lake tables ({lake.location.root})",
        fresh,
        optional=("last commit", "latest known_at"),
    )
    console.print(f"Data Docs: {literal(docs) if docs else 'none written yet'}", soft_wrap=True)
    if not q_rows:
        console.print("[green]No open quarantines.[/green]")
    else:
        _print("Open quarantines", q_rows, optional=("rules", "file_name"))
    console.print(literal(audit), soft_wrap=True)
    if runs:
        _print(f"Last DAG runs ({source})", run_rows)
