"""What the data engineer sees of an ingest run (issue 18): the asset event's extra, the
deadline alert's record of late feeds, and ``status``'s fresh/due/late/stale per feed."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest
from typer.testing import CliRunner

from pipelines.cli.main import app
from pipelines.cli.status import DUE, FRESH, LATE, STALE, feed_freshness
from pipelines.ingest.feed_index import feed_index
from pipelines.ingest.flow import FileOutcome, record_runs
from pipelines.lake import Lake
from pipelines.orchestration.assets import ingest_event_extra
from pipelines.orchestration.deadlines import last_late, vendor_files_late
from pipelines.orchestration.timetable import ExchangeCalendarTimetable

pytestmark = pytest.mark.unit

SESSION = dt.date(2024, 7, 3)  # a Wednesday; 5 July is the next session
NEXT = dt.date(2024, 7, 5)


def _outcome(feed: str, day: dt.date, status: str = "loaded", **kw: object) -> FileOutcome:
    return FileOutcome(feed, day, f"{feed}.csv.gz", "ab" * 32, status, **kw)  # type: ignore[arg-type]


def _loaded(lake: Lake, day: dt.date, feeds: list[str]) -> None:
    record_runs(lake, [(_outcome(f, day, rows=20), None, None) for f in feeds])


def test_asset_extra_carries_rows_contract_quarantines_and_data_docs() -> None:
    outcomes = [
        _outcome("vendor_prices", SESSION, rows=20, data_docs="/lake/reports/data_docs/a.html"),
        _outcome(
            "vendor_prices", SESSION, "warned", rows=2, rules=["published_on_time"],
            data_docs="/lake/reports/data_docs/b.html",
        ),
        _outcome("vendor_prices", SESSION, "quarantined", quarantine_id="Q0123456789ab",
                 rules=["close_positive"]),
    ]  # fmt: skip
    extra = ingest_event_extra("vendor_prices", "2024-07-03", outcomes, ["Q0123456789ab"])
    assert json.loads(json.dumps(extra)) == extra  # stored as JSON by Airflow
    assert extra["rows"] == 22
    assert extra["files"] == {"loaded": 1, "warned": 1, "quarantined": 1}
    assert extra["contract"] == {
        "result": "blocked",
        "rules": ["published_on_time", "close_positive"],
    }
    assert extra["quarantine_ids"] == ["Q0123456789ab"]
    assert extra["open_quarantines"] == ["Q0123456789ab"]
    assert len(extra["data_docs"]) == 2
    warned = ingest_event_extra("vendor_prices", "2024-07-03", outcomes[:2], [])
    assert warned["contract"]["result"] == "warned"


def test_feed_states_against_the_schedule() -> None:
    lake = Lake.from_settings()
    feeds = [e.name for e in feed_index()]
    _loaded(lake, SESSION, feeds)
    _loaded(lake, NEXT, ["vendor_prices"])
    due = ExchangeCalendarTimetable().run_time(NEXT)
    hour = dt.timedelta(hours=1)

    states = {r["feed"]: r for r in feed_freshness(lake, due + hour / 2, deadline_s=3600)}
    assert states["vendor_prices"]["state"] == FRESH
    assert states["vendor_security_master"]["state"] == DUE  # within the deadline
    assert states["vendor_security_master"]["behind"] == 1
    states = {r["feed"]: r for r in feed_freshness(lake, due + 2 * hour, deadline_s=3600)}
    assert states["vendor_security_master"]["state"] == LATE
    assert states["vendor_prices"]["state"] == FRESH
    later = ExchangeCalendarTimetable().run_time(dt.date(2024, 7, 9)) + hour / 2
    states = {r["feed"]: r for r in feed_freshness(lake, later, deadline_s=3600)}
    assert states["vendor_prices"]["state"] == STALE and states["vendor_prices"]["behind"] == 2


def test_deadline_alert_records_the_late_feeds_and_status_shows_them() -> None:
    lake = Lake.from_settings()
    _loaded(lake, SESSION, [e.name for e in feed_index()])
    _loaded(lake, NEXT, ["vendor_security_master"])
    run_time = ExchangeCalendarTimetable().run_time(NEXT)
    context = {
        "dag_run": {"run_id": "scheduled__x", "data_interval_end": run_time.isoformat()},
        "deadline": {"id": "d", "deadline_time": (run_time + dt.timedelta(hours=1)).isoformat()},
    }
    sftp = ["vendor_security_master", "vendor_corporate_actions", "vendor_prices"]
    asyncio.run(vendor_files_late(sftp, context=context))
    assert last_late(NEXT) == {
        "vendor_corporate_actions": NEXT,
        "vendor_prices": NEXT,
    }
    # Inside the ingest deadline by the clock, but the alert fired: late, not due.
    at = (run_time + dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")
    result = CliRunner().invoke(app, ["status", "--no-runs", "--json", "--at", at])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    states = {f["feed"]: f["state"] for f in body["feeds"]}
    assert states["vendor_prices"] == LATE and states["vendor_security_master"] == FRESH
    assert body["dag_runs"]["source"] == "not asked"


def test_status_fits_an_80_column_terminal() -> None:
    lake = Lake.from_settings()
    _loaded(lake, SESSION, [e.name for e in feed_index()])
    result = CliRunner().invoke(app, ["status", "--no-runs"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80, result.output
    assert "vendor_security_master" in result.output  # whole, not "vendor_secur…"
    assert "…" not in result.output


def test_status_schedule_matches_the_dag_timetable() -> None:
    """status judges feeds without importing Airflow; its schedule is the timetable's."""
    from pipelines.cli.status import IngestSchedule

    mine, theirs = IngestSchedule.from_settings(), ExchangeCalendarTimetable()
    for day in (SESSION, NEXT, dt.date(2024, 12, 24), dt.date(2025, 3, 10)):  # DST included
        assert mine.run_time(day) == theirs.run_time(day)
        for offset in (-1, 0, 1):
            at = theirs.run_time(day) + dt.timedelta(seconds=offset)
            assert mine.latest_due(at) == theirs.latest_session_at_or_before(at)
