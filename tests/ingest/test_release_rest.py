"""Integration: a quarantined REST batch is released from the raw zone (issue 15).

REST batches are landed as canonical JSON lines, not gzip CSV: release used to fail with
"not a complete gzip stream". Plain release and ``drop_failing_rows`` now load the landed
records with each record's own knowledge time, as the daily path does; ``--refetch`` is
refused in one line naming the command that fetches the session's window again.
The records come through the simulator's REST server (Airflow's HttpHook), as in
``test_live``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipelines.ingest import quarantine
from pipelines.ingest.feed_spec import FeedSpec
from pipelines.ingest.flow import ReleaseRefused, ingest_rest_day, release, rest_window
from pipelines.ingest.gate import GateContext, GateResult, pass_all
from pipelines.ingest.parse import ParsedBatch
from pipelines.ingest.sources import HttpHookSource, SFTPHookSource
from pipelines.lake import Lake
from pipelines.testing.backdate import HISTORY
from pipelines.vendors.simulator import VendorSimulator
from tests.ingest.conftest import SEEDED_DAYS, RunningVendor

pytestmark = pytest.mark.integration

DAY = SEEDED_DAYS[0]
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
#: Rows a test rule fails (row-level): what --drop-failing-rows leaves out.
BAD_ROWS = (0, 2)


def _two_bad_rows(feed: FeedSpec, batch: ParsedBatch, ctx: GateContext) -> GateResult:
    return GateResult(
        outcome="blocked",
        rules=["test.row"],
        message=f"{batch.file_name}: rule test.row: rows {list(BAD_ROWS)}",
        failed_rows=np.array(BAD_ROWS, dtype=np.int64),
    )


def _quarantine(lake: Lake, feed: FeedSpec) -> str:
    (outcome,) = ingest_rest_day(
        lake,
        feed,
        DAY,
        HttpHookSource(),
        _two_bad_rows,
        previous_session=None,
        raise_on_quarantine=False,
        backdate=HISTORY,
    )
    assert outcome.status == "quarantined" and outcome.quarantine_id
    return outcome.quarantine_id


def _landed(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """The records of a quarantined REST batch, as landed (canonical JSON lines)."""
    data = Path(rec["raw_uri"].removeprefix("file://")).read_bytes()
    return [json.loads(line) for line in data.splitlines()]


def _time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _known_times(lake: Lake, table: str) -> list[dt.datetime]:
    return sorted(lake.dataset(table).to_table(columns=["known_at"])["known_at"].to_pylist())


def test_rest_batch_released_from_the_raw_zone(
    live: RunningVendor, lake: Lake, sim: VendorSimulator, feeds: dict[str, FeedSpec]
) -> None:
    _, until = rest_window(DAY, None)
    feed = feeds["vendor_fundamentals"]
    published = sim.fundamentals(until_clock=until)["published_at"]
    qid = _quarantine(lake, feed)
    assert lake.status("fundamentals").rows == 0

    # --refetch: one line saying what to run instead; the record stays open.
    with pytest.raises(ReleaseRefused) as caught:
        release(lake, qid, pass_all, feeds=feeds, source=SFTPHookSource())
    assert "\n" not in str(caught.value)
    assert f"alphafactory ingest day --date {DAY} --feed vendor_fundamentals" in str(caught.value)
    assert quarantine.get_record(lake, qid)["status"] == "open"

    # --drop-failing-rows: the rest load, each record at its own publication time.
    out = release(lake, qid, _two_bad_rows, feeds=feeds, drop_failing_rows=True, actor="ops")
    assert out.status == "released" and out.rows == len(published) - len(BAD_ROWS)
    landed = _landed(quarantine.get_record(lake, qid))
    kept = sorted(_time(r["published_at"]) for i, r in enumerate(landed) if i not in BAD_ROWS)
    assert _known_times(lake, "fundamentals") == kept  # each record at its own time
    assert len(set(kept)) > 1  # not one batch instant
    assert quarantine.get_record(lake, qid)["status"] == "released"


def test_rest_batch_plain_release_loads_every_record(
    live: RunningVendor, lake: Lake, sim: VendorSimulator, feeds: dict[str, FeedSpec]
) -> None:
    _, until = rest_window(DAY, None)
    feed = feeds["vendor_sentiment"]
    expected = sim.sentiment(until_clock=until)
    qid = _quarantine(lake, feed)
    # The rule was relaxed (here: no rule): plain release loads the landed records as sent.
    out = release(lake, qid, pass_all, feeds=feeds, actor="ops", reason="rule relaxed")
    assert out.status == "released" and out.rows == len(expected)
    stored = _known_times(lake, "sentiment")
    assert stored == sorted(t.to_pydatetime() for t in expected["published_at"])
    rec = quarantine.get_record(lake, qid)
    assert rec["status"] == "released" and "rule relaxed" in rec["message"]
