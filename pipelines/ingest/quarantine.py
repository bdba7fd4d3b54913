"""Quarantine: batches a blocking contract rule held back — kept, explained, releasable.

A quarantine record names the feed, day, file (and its raw-zone copy), the failing rules
with counts and sample rows. Status changes (``open`` → ``released`` / ``dropped``) are new
versions of the record, so the lake keeps the whole story.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any, NamedTuple

import pyarrow as pa

from pipelines.ingest.gate import GateResult
from pipelines.lake import Lake, LakeError, RawFile
from pipelines.timeline import ALL_DATES

TABLE = "quarantine"


_COLUMNS = (
    "quarantine_id",
    "feed",
    "target_table",
    "file_name",
    "sha256",
    "raw_uri",
    "status",
    "rules",
    "failed_rows",
    "total_rows",
    "sample",
    "message",
    "actor",
    "valid_date",
)


class QuarantineNotFound(LakeError):
    """No quarantine record has the given id."""


def quarantine_id(feed: str, day: dt.date, file_name: str, sha256: str) -> str:
    """Stable id: the same bad bytes for the same feed and day always map to one record."""
    digest = hashlib.sha256(f"{feed}|{day.isoformat()}|{file_name}|{sha256}".encode()).hexdigest()
    return f"Q{digest[:12]}"


class QuarantineItem(NamedTuple):
    """One batch to quarantine (see :func:`record`)."""

    feed: str
    target_table: str
    day: dt.date
    raw: RawFile
    result: GateResult
    total_rows: int | None


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
    item = QuarantineItem(feed, target_table, day, raw, result, total_rows)
    return record_many(lake, [item], status=status, actor=actor, now=now)[0]


def record_many(
    lake: Lake,
    items: list[QuarantineItem],
    *,
    status: str = "open",
    actor: str | None = None,
    now: dt.datetime | None = None,
) -> list[str]:
    """:func:`record` for many batches in one lake commit (a backfill chunk); returns the ids."""
    if not items:
        return []
    rows: list[dict[str, Any]] = []
    batch_ids: list[str] = []
    for it in items:
        qid = quarantine_id(it.feed, it.day, it.raw.file_name, it.raw.sha256)
        rows.append(
            {
                "quarantine_id": qid,
                "feed": it.feed,
                "target_table": it.target_table,
                "file_name": it.raw.file_name,
                "sha256": it.raw.sha256,
                "raw_uri": it.raw.uri,
                "status": status,
                "rules": json.dumps(it.result.rules),
                "failed_rows": len(it.result.failed_rows) if len(it.result.failed_rows) else None,
                "total_rows": it.total_rows,
                "sample": json.dumps(it.result.sample[:5], default=str),
                "message": it.result.message,
                "actor": actor,
                "valid_date": it.day,
            }
        )
        # Opening is idempotent per (bytes, reasons); a status change is a new version.
        digest = hashlib.sha256(it.result.message.encode()).hexdigest()[:12]
        batch_ids.append(f"quarantine:{qid}:{status}:{digest}")
    lake.write(
        TABLE,
        pa.Table.from_pylist(rows),
        known_at=now or dt.datetime.now(dt.UTC),
        row_batch_ids=pa.array(batch_ids, pa.string()),
    )
    return [r["quarantine_id"] for r in rows]


def set_status(
    lake: Lake,
    rec: dict[str, Any],
    status: str,
    *,
    actor: str,
    note: str,
    now: dt.datetime | None = None,
) -> None:
    """Write a new version of record ``rec`` with ``status``; reasons and sample are kept."""
    row = {k: rec[k] for k in _COLUMNS}
    row.update(status=status, actor=actor, message=f"{rec['message']} | {note}")
    digest = hashlib.sha256(row["message"].encode()).hexdigest()[:12]
    lake.write(
        TABLE,
        pa.Table.from_pylist([row]),
        known_at=now or dt.datetime.now(dt.UTC),
        batch_id=f"quarantine:{rec['quarantine_id']}:{status}:{digest}",
    )


def list_records(lake: Lake, status: str | None = "open") -> list[dict[str, Any]]:
    """Latest version of every quarantine record (optionally only one status), newest day first."""
    rows = lake.as_of(TABLE, known_at=dt.datetime.now(dt.UTC), valid_at=ALL_DATES).to_pylist()
    if status is not None:
        rows = [r for r in rows if r["status"] == status]
    return sorted(rows, key=lambda r: (r["valid_date"], r["feed"], r["file_name"]), reverse=True)


def get_record(lake: Lake, qid: str) -> dict[str, Any]:
    """Latest version of quarantine record ``qid``."""
    for row in list_records(lake, status=None):
        if row["quarantine_id"] == qid:
            return row
    raise QuarantineNotFound(f"no quarantine record {qid!r}")
