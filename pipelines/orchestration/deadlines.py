"""Airflow 3 deadline alerts for late vendor files: :func:`vendor_files_late`.

``vendor_ingest`` declares a :class:`~airflow.sdk.DeadlineAlert` (queued time + the ingest
deadline). When a run misses it, the triggerer awaits :func:`vendor_files_late`, which
names the feeds with nothing loaded for the session, logs them at WARNING and appends a
line to :func:`late_feeds_log` that ``alphafactory status`` reads (``late`` per feed). The
sensors stay: they fail the run at the same deadline; the alert says it while they wait.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
LATE_FEEDS_FILE = "late_feeds.jsonl"


def late_feeds_log() -> Path:
    """``<reports>/late_feeds.jsonl`` beside the Data Docs (one JSON object a line)."""
    from pipelines.contracts.data_docs import data_docs_root

    return data_docs_root().parent / LATE_FEEDS_FILE


def loaded_feeds(lake: Any, session: dt.date, feeds: list[str]) -> set[str]:
    """Those of ``feeds`` with a loaded, warned or released file for ``session``."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    if lake.table("ingest_runs") is None:
        return set()
    runs = lake.dataset("ingest_runs").to_table(
        columns=["feed", "status"],
        filter=(ds.field("valid_date") == session) & ds.field("feed").isin(feeds),
    )
    ok = pc.is_in(
        runs.column("status"), value_set=pc.cast(["loaded", "warned", "released"], "string")
    )
    return {str(f) for f in runs.filter(ok).column("feed").to_pylist()}


def record_late(session: dt.date, feeds: list[str], run_id: str, deadline: Any) -> dict[str, Any]:
    """Name the feeds of ``feeds`` still missing for ``session`` and record them; returns
    the recorded entry."""
    from pipelines.lake import Lake

    late = sorted(set(feeds) - loaded_feeds(Lake.from_settings(), session, feeds))
    entry = {
        "session": session.isoformat(),
        "late_feeds": late,
        "run_id": run_id,
        "deadline": str(deadline),
        "recorded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    path = late_feeds_log()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(entry) + "\n")
    log.warning(
        "vendor files late for session %s (deadline %s): %s", session, deadline, ", ".join(late)
    )
    return entry


def last_late(session: dt.date | None = None) -> dict[str, dt.date]:
    """Feed → latest session a deadline alert recorded it late (optionally one session)."""
    path = late_feeds_log()
    out: dict[str, dt.date] = {}
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
            day = dt.date.fromisoformat(entry["session"])
        except (ValueError, KeyError):
            continue
        if session is not None and day != session:
            continue
        for feed in entry.get("late_feeds", []):
            out[feed] = max(out.get(feed, day), day)
    return out


async def vendor_files_late(feeds: list[str], context: dict[str, Any] | None = None) -> None:
    """Deadline-miss callback (run by the triggerer): record which of ``feeds`` are late
    for the run's session. Never raises: an alert that fails must not hide the lateness."""
    from pipelines.orchestration.timetable import session_of

    try:
        dag_run = (context or {}).get("dag_run") or {}
        end = dag_run.get("data_interval_end") or dag_run.get("run_after")
        session = session_of(dt.datetime.fromisoformat(str(end).replace("Z", "+00:00")))
        deadline = ((context or {}).get("deadline") or {}).get("deadline_time")
        await asyncio.to_thread(record_late, session, feeds, str(dag_run.get("run_id")), deadline)
    except Exception:
        log.exception("vendor_files_late could not record the late feeds %s", feeds)
