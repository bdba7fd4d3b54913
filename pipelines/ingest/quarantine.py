"""Quarantine: batches a blocking contract rule held back — kept, explained, releasable.

A quarantine record names the feed, day, file (and its raw-zone copy), the failing rules
with counts and sample rows. Status changes (``open`` → ``released`` / ``dropped`` /
``superseded``) are new versions of the record, so the lake keeps the whole story.

A record is *superseded* once a newer delivery of the same feed, day and file name (a later
raw-zone version, another sha256) has been loaded: releasing the stale bytes would put old
values back over the newer ones, so such a record is closed instead (see
:func:`superseded_by`), and it no longer counts as open.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from typing import Any, NamedTuple

import pyarrow as pa

from pipelines.ingest.gate import GateResult
from pipelines.lake import Lake, LakeError, RawFile
from pipelines.lake.interface import Store
from pipelines.timeline import ALL_DATES, LATEST

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


#: ``ingest_runs`` statuses of a delivery whose rows reached silver.
LOADED_STATUSES = ("loaded", "warned", "released")

#: How a record names the upstream records that hold it back: ``blocked by Q…, Q…``.
_BLOCKED_BY = re.compile(r"blocked by (Q[0-9a-f]{12}(?:, Q[0-9a-f]{12})*)")


class QuarantineNotFound(LakeError):
    """No quarantine record has the given id."""


class NewerLoad(NamedTuple):
    """A delivery of a quarantined record's feed, day and file loaded after its bytes."""

    sha256: str
    file_version: int
    status: str

    def describe(self, rec: dict[str, Any]) -> str:
        """The newer batch as an operator finds it (feed, day, file, raw version, sha)."""
        return (
            f"{rec['feed']} {rec['valid_date']} {rec['file_name']} raw version "
            f"{self.file_version} (sha256 {self.sha256[:16]}…, {self.status})"
        )


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


def superseded_by(lake: Lake, rec: dict[str, Any]) -> NewerLoad | None:
    """The newest delivery that replaced record ``rec``'s bytes in silver, if any.

    Newer means a later raw-zone version of the same feed, day and file name (versions
    count deliveries in arrival order) whose rows were loaded (``ingest_runs``). A load of
    an *older* version does not count: releasing a re-delivery over it is what release is
    for. Unknown raw versions never make a record superseded (it stays open, visibly).
    """
    where = {"feed": rec["feed"], "file_name": rec["file_name"]}
    day = rec["valid_date"]
    versions = {
        r["sha256"]: int(r["file_version"])
        for r in lake.history("raw_manifest", where).to_pylist()
        if r["valid_date"] == day
    }
    mine = versions.get(rec["sha256"])
    if mine is None:
        return None
    loaded = {
        r["sha256"]: str(r["status"])
        for r in lake.history("ingest_runs", where).to_pylist()
        if r["valid_date"] == day
        and r["status"] in LOADED_STATUSES
        and (r["rows"] or 0) > 0  # an empty REST window overwrites nothing
        and versions.get(r["sha256"], 0) > mine
    }
    if not loaded:
        return None
    sha = max(loaded, key=lambda s: versions[s])
    return NewerLoad(sha, versions[sha], loaded[sha])


def blocked_by(rec: dict[str, Any]) -> list[str]:
    """Ids of the upstream records ``rec``'s message says hold it back (``blocked by Q…``)."""
    found = _BLOCKED_BY.findall(str(rec.get("message") or ""))
    return sorted({qid for group in found for qid in group.split(", ")})


def _latest(lake: Lake) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = lake.as_of(
        TABLE, known_at=dt.datetime.now(dt.UTC), valid_at=ALL_DATES
    ).to_pylist()
    return rows


def list_records(lake: Lake, status: str | None = "open") -> list[dict[str, Any]]:
    """Latest version of every quarantine record (optionally only one status), newest day first.

    An open record that a newer load has superseded (:func:`superseded_by`) is listed as
    ``superseded`` — it is closed for good by its next release attempt — so ``"open"``
    means only batches still holding data back.
    """
    rows = [_effective(lake, r) for r in _latest(lake)]
    if status is not None:
        rows = [r for r in rows if r["status"] == status]
    return sorted(rows, key=lambda r: (r["valid_date"], r["feed"], r["file_name"]), reverse=True)


def _effective(lake: Lake, rec: dict[str, Any]) -> dict[str, Any]:
    """``rec`` as an operator should see it: an open record a newer load replaced reads
    ``superseded`` (not stored until its release closes it)."""
    if rec["status"] == "open" and (newer := superseded_by(lake, rec)) is not None:
        note = f"superseded by {newer.describe(rec)}, loaded since"
        return {**rec, "status": "superseded", "message": f"{rec['message']} | {note}"}
    return rec


def get_record(lake: Lake, qid: str, *, effective: bool = False) -> dict[str, Any]:
    """Latest stored version of quarantine record ``qid`` (``effective``: as
    :func:`list_records` shows it, an open record a newer load replaced as ``superseded``)."""
    for row in _latest(lake):
        if row["quarantine_id"] == qid:
            return _effective(lake, row) if effective else row
    raise QuarantineNotFound(f"no quarantine record {qid!r}")


def holding(store: Store, day: dt.date, table: str) -> list[str]:
    """The ids of the open quarantine records holding back ``table`` rows of ``day`` (what a
    later stage names when it has nothing for the session)."""
    try:
        rows = store.as_of(TABLE, known_at=LATEST, valid_at=day).to_pylist()
    except LakeError:
        return []
    latest: dict[str, dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: r["known_at"]):
        latest[str(r["quarantine_id"])] = r
    return sorted(
        qid for qid, r in latest.items() if r["status"] == "open" and r.get("target_table") == table
    )


def holding_note(store: Store, day: dt.date, table: str) -> str:
    """`` — held back by quarantine Q…`` naming :func:`holding`'s records, or ``""``."""
    ids = holding(store, day, table)
    if not ids:
        return ""
    shown = ", ".join(ids[:5]) + (" …" if len(ids) > 5 else "")
    return f"; held back by quarantine {shown} (alphafactory quarantine show {ids[0]})"
