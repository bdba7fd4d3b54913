"""Quarantine: batches a blocking contract rule held back — kept, explained, releasable.

A quarantine record names the feed, day, file (and its raw-zone copy), the failing rules
with counts and sample rows. Status changes (``open`` → ``released`` / ``dropped``) are new
versions of the record, so the lake keeps the whole story.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import pyarrow as pa

from pipelines.ingest.gate import GateResult
from pipelines.lake import Lake, LakeError, RawFile

TABLE = "quarantine"
ALL_TIME = (dt.date(1900, 1, 1), dt.date(2999, 12, 31))


class QuarantineNotFound(LakeError):
    """No quarantine record has the given id."""


def quarantine_id(feed: str, day: dt.date, file_name: str, sha256: str) -> str:
    """Stable id: the same bad bytes for the same feed and day always map to one record."""
    digest = hashlib.sha256(f"{feed}|{day.isoformat()}|{file_name}|{sha256}".encode()).hexdigest()
    return f"Q{digest[:12]}"


def record(
    lake: Lake,
    *,
    feed: str,
    target_table: str,
    day: dt.date,
    raw: RawFile,
    result: GateResult,
    total_rows: int | None,
    status: str = "open",
    actor: str | None = None,
    now: dt.datetime | None = None,
) -> str:
    """Write (a new version of) the quarantine record for ``raw``; returns its id."""
    qid = quarantine_id(feed, day, raw.file_name, raw.sha256)
    row = {
        "quarantine_id": qid,
        "feed": feed,
        "target_table": target_table,
        "file_name": raw.file_name,
        "sha256": raw.sha256,
        "raw_uri": raw.uri,
        "status": status,
        "rules": json.dumps(result.rules),
        "failed_rows": len(result.failed_rows) if len(result.failed_rows) else None,
        "total_rows": total_rows,
        "sample": json.dumps(result.sample[:5], default=str),
        "message": result.message,
        "actor": actor,
        "valid_date": day,
    }
    known = now or dt.datetime.now(dt.UTC)
    # Opening is idempotent per (bytes, reasons); a status change is a new version.
    batch = f"quarantine:{qid}:{status}:{hashlib.sha256(result.message.encode()).hexdigest()[:12]}"
    lake.write(TABLE, pa.Table.from_pylist([row]), known_at=known, batch_id=batch)
    return qid


def list_records(lake: Lake, status: str | None = "open") -> list[dict[str, Any]]:
    """Latest version of every quarantine record (optionally only one status), newest day first."""
    rows = lake.as_of(TABLE, known_at=dt.datetime.now(dt.UTC), valid_at=ALL_TIME).to_pylist()
    if status is not None:
        rows = [r for r in rows if r["status"] == status]
    return sorted(rows, key=lambda r: (r["valid_date"], r["feed"], r["file_name"]), reverse=True)


def get_record(lake: Lake, qid: str) -> dict[str, Any]:
    """Latest version of quarantine record ``qid``."""
    for row in list_records(lake, status=None):
        if row["quarantine_id"] == qid:
            return row
    raise QuarantineNotFound(f"no quarantine record {qid!r}")
