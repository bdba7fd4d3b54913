"""Ingest one feed for one business day: fetch → verify → land raw → parse → gate → silver.

Every step is idempotent: the raw zone is create-only, silver writes carry the vendor
file's sha256 as their batch id, quarantine ids are derived from the bytes. Running a day
twice adds nothing. A blocking contract failure quarantines the file (the raw bytes stay)
and the day's run fails with a message naming feed, day, file, rule and rows.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.errors import AlphaFactoryError
from pipelines.ingest import quarantine
from pipelines.ingest.feed_index import TABLE_DEPENDENCIES
from pipelines.ingest.feed_spec import FeedSpec, load_feeds
from pipelines.ingest.gate import Gate, GateContext, GateResult, file_failure
from pipelines.ingest.knowledge import Backdate, backdate_label, rows_known_at
from pipelines.ingest.manifest import delivery_problem, row_count_problem
from pipelines.ingest.parse import (
    SOURCE_FILE,
    SOURCE_LINE,
    FileFormatError,
    ParsedBatch,
    map_columns,
    parse_file,
)
from pipelines.ingest.sources import FileSource, RecordSource, records_to_jsonl
from pipelines.lake import Lake, RawFile, get_table
from pipelines.timeline import ALL_DATES, trading_calendar

log = logging.getLogger(__name__)
Status = Literal["loaded", "warned", "quarantined", "unchanged", "released", "superseded"]


class FeedNotPublished(AlphaFactoryError, RuntimeError):
    """The vendor has not published the feed's folder (or file) for the day yet."""

    def __init__(self, feed: str, day: dt.date, path: str) -> None:
        super().__init__(f"feed {feed}: nothing published for {day.isoformat()} at {path}")
        self.feed, self.day, self.path = feed, day, path


class BatchQuarantined(AlphaFactoryError, RuntimeError):
    """At least one file of the day was quarantined; downstream must not run."""

    def __init__(self, outcomes: list[FileOutcome]) -> None:
        bad = [o for o in outcomes if o.status == "quarantined"]
        lines = [
            f"{o.feed} {o.logical_date}: {o.message} (quarantine {o.quarantine_id})" for o in bad
        ]
        super().__init__("quarantined:\n" + "\n".join(lines))
        self.outcomes = outcomes


@dataclass
class FileOutcome:
    """What happened to one vendor file."""

    feed: str
    logical_date: dt.date
    file_name: str
    sha256: str | None
    status: Status
    rows: int = 0
    message: str = ""
    quarantine_id: str | None = None
    rules: list[str] = field(default_factory=list)
    #: Records released automatically with this one (they were blocked by it), or left
    #: open (status ``quarantined``, message why): see :func:`release`.
    dependents: list[FileOutcome] = field(default_factory=list)
    #: The Great Expectations Data Docs page of the contract run (None: no contract ran).
    data_docs: str | None = None


def silver_batch_id(feed: str, day: dt.date, file_name: str, sha256: str) -> str:
    """Batch id of a vendor file in silver: the same delivery is loaded at most once."""
    return f"{feed}:{day.isoformat()}:{file_name}:{sha256}"


def record_runs(
    lake: Lake,
    outcomes: list[tuple[FileOutcome, dt.datetime | None, dt.datetime | None]],
    backdate: Backdate | None = None,
) -> None:
    """Append what each file's ingestion did to ``ingest_runs`` (one commit, idempotent).

    Each entry is ``(outcome, rows_known_at, published_at)``: the knowledge time the file's
    rows got and the vendor's declared publish time; ``backdate`` (who and why) is recorded
    on every run it stamped.
    """
    if not outcomes:
        return
    label = backdate_label(backdate)
    rows = [
        {
            "feed": o.feed,
            "file_name": o.file_name,
            "sha256": o.sha256,
            "status": o.status,
            "rows": o.rows,
            "published_at": published_at,
            "message": o.message,
            "valid_date": o.logical_date,
            "rows_known_at": known_at,
            "backdate": label if known_at is not None else None,
        }
        for o, known_at, published_at in outcomes
    ]
    ids = [
        f"run:{o.feed}:{o.logical_date}:{o.file_name}:{o.sha256}:{o.status}" for o, _, _ in outcomes
    ]
    lake.write(
        "ingest_runs",
        pa.Table.from_pylist(rows),
        known_at=dt.datetime.now(dt.UTC),
        row_batch_ids=pa.array(ids),
    )


#: Statuses of a run that put a file's rows into silver.
_LOADING = ("loaded", "warned", "released")


def recover_unrecorded(
    lake: Lake, feed: FeedSpec, outcomes: list[FileOutcome]
) -> list[FileOutcome]:
    """``outcomes`` with every "unchanged" file whose load no run ever recorded (a run
    killed between the data commit and the run-log write) restated as ``loaded``, with the
    rows its silver batch holds — so a re-run after a crash records what happened instead
    of "unchanged, 0 rows". Other outcomes are returned as they are."""
    idle = [o for o in outcomes if o.status == "unchanged"]
    if not idle:
        return outcomes
    days = [o.logical_date for o in idle]
    if lake.table("ingest_runs") is None:
        runs: list[dict[str, Any]] = []
    else:
        # Every run ever recorded (all versions: a later "unchanged" run of the same file is
        # the current version of its key and would hide the load an as-of read shows).
        window = (
            (pc.field("feed") == feed.name)
            & (pc.field("valid_date") >= pa.scalar(min(days), pa.date32()))
            & (pc.field("valid_date") <= pa.scalar(max(days), pa.date32()))
        )
        runs = (
            lake.dataset("ingest_runs")
            .to_table(filter=window, columns=["valid_date", "file_name", "sha256", "status"])
            .to_pylist()
        )
    recorded = {
        (r["valid_date"], r["file_name"], r["sha256"]) for r in runs if r["status"] in _LOADING
    }
    out = []
    for o in outcomes:
        if (
            o.status != "unchanged"
            or o.sha256 is None
            or (o.logical_date, o.file_name, o.sha256) in recorded
        ):
            out.append(o)
            continue
        bid = silver_batch_id(feed.name, o.logical_date, o.file_name, o.sha256)
        rows = lake.dataset(feed.table).count_rows(filter=pc.field("_batch_id") == bid)
        log.warning("%s %s %s: loaded by a run that stopped before recording it", o.feed,
                    o.logical_date, o.file_name)  # fmt: skip
        out.append(
            FileOutcome(
                o.feed,
                o.logical_date,
                o.file_name,
                o.sha256,
                "loaded",
                rows,
                "recovered from the lake: loaded by a run that stopped before recording it",
            )
        )
    return out


def _ingest_run(
    lake: Lake,
    o: FileOutcome,
    known_at: dt.datetime | None,
    published_at: dt.datetime | None,
    backdate: Backdate | None = None,
) -> None:
    record_runs(lake, [(o, known_at, published_at)], backdate)


def previous_rows(lake: Lake, feed: FeedSpec, day: dt.date) -> int | None:
    """Rows of the feed's last delivered main file before ``day`` (for day-over-day bounds)."""
    start = day - dt.timedelta(days=10)
    runs = lake.as_of(
        "ingest_runs",
        known_at=dt.datetime.now(dt.UTC),
        valid_at=(start, day - dt.timedelta(days=1)),
        filter=pc.field("feed") == feed.name,
    ).to_pylist()
    loaded = [
        r
        for r in runs
        if r["status"] in ("loaded", "warned", "released")
        and r["file_name"] == feed.file_name(r["valid_date"])
    ]
    return int(loaded[-1]["rows"]) if loaded else None


def business_date(feed: FeedSpec, day: dt.date, file_name: str) -> dt.date:
    """The session a delivered file's rows belong to: the delivery's own session, except a
    correction file, which re-delivers the previous session."""
    if feed.corrections and file_name != feed.file_name(day):
        previous = trading_calendar().previous(day)
        if previous is not None and file_name == feed.correction_file(previous):
            return previous
    return day


def known_security_ids(lake: Lake, at: dt.datetime, day: dt.date) -> frozenset[str]:
    """Securities in the master as known at ``at``, in force on ``day`` (listed or not:
    rows after a delisting are the ``listed`` rule's business, see :func:`delisted_ids`)."""
    master = lake.as_of("security_master", known_at=at, valid_at=day, columns=["listed"])
    return frozenset(master.column("security_id").to_pylist())


def delisted_ids(
    lake: Lake, at: dt.datetime, days: dt.date | tuple[dt.date, dt.date]
) -> dict[str, dt.date]:
    """Securities whose master version in force on ``days`` (as known at ``at``) says
    ``listed = false``: id → last trading date (``delist_date``, else the version's
    ``valid_date``). Rows of a security dated after it are not data a vendor can have."""
    master = lake.as_of(
        "security_master",
        known_at=at,
        valid_at=days,
        columns=["listed", "delist_date"],
    ).to_pylist()
    out: dict[str, dt.date] = {}
    for row in sorted(master, key=lambda r: r["valid_date"]):
        sid = str(row["security_id"])
        if row["listed"] is False:
            out[sid] = row["delist_date"] or row["valid_date"]
        else:
            out.pop(sid, None)  # relisted (or a later version in force)
    return out


def _silver_frame(batch: ParsedBatch, known_at: dt.datetime | pa.Array) -> pa.Table:
    tbl = batch.table.drop_columns(
        [c for c in (SOURCE_FILE, SOURCE_LINE) if c in batch.table.column_names]
    )
    if isinstance(known_at, dt.datetime):
        known_at = pa.repeat(pa.scalar(known_at, pa.timestamp("us", tz="UTC")), tbl.num_rows)
    return tbl.append_column("known_at", known_at)


def gate_and_load(
    lake: Lake,
    feed: FeedSpec,
    day: dt.date,
    raw: RawFile,
    batch: ParsedBatch,
    published_at: dt.datetime,
    gate: Gate,
    *,
    drop_failing_rows: bool = False,
    actor: str | None = None,
) -> FileOutcome:
    """Run the contract on a parsed file; load it to silver or quarantine it."""
    ctx = GateContext(
        feed=feed.name,
        logical_date=business_date(feed, day, raw.file_name),
        file_names=(raw.file_name,),
        published_at=published_at,
        previous_rows=(
            previous_rows(lake, feed, day) if raw.file_name == feed.file_name(day) else None
        ),
        known_security_ids=(
            None if feed.table == "security_master" else known_security_ids(lake, published_at, day)
        ),
        delisted=(
            None if feed.table == "security_master" else delisted_ids(lake, published_at, day)
        ),
        lake_root=lake.location.root,
    )
    result = gate(feed, batch, ctx)
    if result.outcome == "blocked":
        result = _name_upstream_blockers(lake, feed, day, batch, ctx, result)
    if result.result_rows:
        _write_validation_results(lake, feed, day, raw, result)
    if result.outcome == "blocked" and not (drop_failing_rows and not result.batch_level):
        qid = quarantine.record(
            lake,
            feed=feed.name,
            target_table=feed.table,
            day=day,
            raw=raw,
            result=result,
            total_rows=batch.rows,
        )
        return FileOutcome(
            feed.name,
            day,
            raw.file_name,
            raw.sha256,
            "quarantined",
            0,
            result.message,
            qid,
            result.rules,
            data_docs=result.data_docs,
        )
    tbl = batch.table
    if result.outcome == "blocked":
        keep = pc.invert(pc.is_in(pa.array(range(tbl.num_rows)), pa.array(result.failed_rows)))
        batch = ParsedBatch(batch.feed, batch.file_name, tbl.filter(keep), batch.issues)
    write = lake.write(
        feed.table,
        _silver_frame(batch, published_at),
        batch_id=silver_batch_id(feed.name, day, raw.file_name, raw.sha256),
    )
    status: Status = "released" if actor else ("warned" if result.outcome == "warned" else "loaded")
    if not write.written and actor is None:
        status = "unchanged"
    return FileOutcome(
        feed.name,
        day,
        raw.file_name,
        raw.sha256,
        status,
        batch.rows,
        result.message,
        None,
        result.rules,
        data_docs=result.data_docs,
    )


def _write_validation_results(
    lake: Lake, feed: FeedSpec, day: dt.date, raw: RawFile, result: GateResult
) -> None:
    run_id = f"{feed.name}:{raw.file_name}:{raw.sha256[:16]}"
    rows = []
    for r in result.result_rows:
        rows.append(
            {
                "run_id": run_id,
                "dataset": feed.contract,
                "feed": feed.name,
                "file_name": raw.file_name,
                "rule": str(r.get("rule")),
                "expectation": r.get("expectation"),
                "policy": r.get("policy"),
                "success": bool(r.get("success")),
                "skipped": bool(r.get("skipped", False)),
                "outcome": result.outcome,
                "unexpected_count": r.get("unexpected_count"),
                "unexpected_percent": r.get("unexpected_percent"),
                "sample": r.get("sample")
                if isinstance(r.get("sample"), str | None)
                else json.dumps(r.get("sample"), default=str),
                "message": r.get("message"),
                "rows": r.get("rows"),
                "valid_date": day,
            }
        )
    lake.write(
        "validation_results",
        pa.Table.from_pylist(rows),
        known_at=dt.datetime.now(dt.UTC),
        batch_id=f"vr:{run_id}:{result.outcome}:{len(rows)}",
    )


def _manifest(feed: FeedSpec, day: dt.date, session: Any, listing: list[str]) -> dict[str, Any]:
    name = feed.manifest_name(day)
    if not name:
        return {"files": [], "published_at": None}
    if name not in listing:
        raise FeedNotPublished(feed.name, day, feed.remote_path(day, name))
    manifest: dict[str, Any] = json.loads(session.read(feed.remote_path(day, name)))
    return manifest


class ManifestError(AlphaFactoryError, ValueError):
    """A vendor manifest lacks what the feed relies on (its ``published_at``)."""


#: Feeds whose receipt-time rule was logged already (once per feed per process).
_RECEIPT_LOGGED: set[str] = set()


def declared_time(
    feed: FeedSpec,
    day: dt.date,
    manifest: dict[str, Any],
    received: dt.datetime,
    mtime: dt.datetime | None = None,
) -> dt.datetime:
    """The time the vendor declares a file of ``feed`` for ``day`` was published, as the
    feed's ``known_at`` says to read it (``pipelines/vendors/FORMATS.md``). It is recorded
    as ``ingest_runs.published_at``; rows get it as their knowledge time only under an
    explicit backdate (:mod:`pipelines.ingest.knowledge`), otherwise our receipt time.

    * ``manifest`` (default): the manifest's ``published_at``. A manifest without one is
      refused with :class:`ManifestError` naming the remote file.
    * ``receipt``: ``received``, the moment we read the files (logged once per feed): the
      vendor declares nothing, so even a backdate cannot go earlier.
    * ``file_mtime``: ``mtime``, the file's modification time on the vendor's server.
    """
    if feed.known_at == "receipt":
        if feed.name not in _RECEIPT_LOGGED:
            _RECEIPT_LOGGED.add(feed.name)
            log.info("feed %s: knowledge time is our receipt time (known_at: receipt)", feed.name)
        return received
    if feed.known_at == "file_mtime":
        if mtime is None:
            raise ManifestError(f"feed {feed.name}: known_at: file_mtime but no file time read")
        return mtime
    path = feed.remote_path(day, feed.manifest_name(day) or "")
    value = manifest.get("published_at")
    if not value:
        raise ManifestError(
            f"feed {feed.name}: manifest {path} has no published_at, and the feed takes its "
            f"knowledge time from it (known_at: manifest in {feed.source_path}); declare "
            "known_at: receipt or file_mtime if the vendor publishes none"
        )
    try:
        published = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ManifestError(
            f"feed {feed.name}: manifest {path}: published_at {value!r} is not an ISO-8601 time"
        ) from None
    if published.tzinfo is None:
        raise ManifestError(
            f"feed {feed.name}: manifest {path}: published_at {value!r} has no time zone"
        )
    return published.astimezone(dt.UTC)


def ingest_sftp_day(
    lake: Lake,
    feed: FeedSpec,
    day: dt.date,
    source: FileSource,
    gate: Gate,
    *,
    previous_session: dt.date | None = None,
    raise_on_quarantine: bool = True,
    backdate: Backdate | None = None,
) -> list[FileOutcome]:
    """Ingest a file-drop feed for ``day`` (its main file and any correction file).

    Rows are known from our receipt of the file; with ``backdate``, from the vendor's
    declared publish time (:mod:`pipelines.ingest.knowledge`)."""
    remote_dir = feed.remote_folder(day)
    outcomes: list[FileOutcome] = []
    with source.session() as session:
        listing = session.list_dir(remote_dir)
        if listing is None:
            raise FeedNotPublished(feed.name, day, remote_dir)
        manifest = _manifest(feed, day, session, listing)
        received = dt.datetime.now(dt.UTC)
        names = [feed.file_name(day)]
        correction = feed.correction_file(previous_session) if previous_session else None
        if correction and correction in listing:
            names.append(correction)
        runs: list[tuple[FileOutcome, dt.datetime | None, dt.datetime | None]] = []
        for name in names:
            if name not in listing:
                raise FeedNotPublished(feed.name, day, feed.remote_path(day, name))
            path = feed.remote_path(day, name)
            mtime = session.mtime(path) if feed.known_at == "file_mtime" else None
            # Before landing anything: a manifest without the feed's publish time is refused.
            published = declared_time(feed, day, manifest, received, mtime)
            data = session.read(path)
            outcome, known = _ingest_file(
                lake, feed, day, name, data, manifest, published, received, gate, backdate
            )
            runs.append((outcome, known, published))
            outcomes.append(outcome)
    record_runs(lake, runs, backdate)
    for o in outcomes:
        log.info(
            "%s %s %s: %s %d rows %s",
            o.feed,
            o.logical_date,
            o.file_name,
            o.status,
            o.rows,
            o.message,
        )
    if raise_on_quarantine and any(o.status == "quarantined" for o in outcomes):
        raise BatchQuarantined(outcomes)
    return outcomes


def _ingest_file(
    lake: Lake,
    feed: FeedSpec,
    day: dt.date,
    name: str,
    data: bytes,
    manifest: dict[str, Any],
    published: dt.datetime,
    received: dt.datetime,
    gate: Gate,
    backdate: Backdate | None = None,
) -> tuple[FileOutcome, dt.datetime]:
    """Land, check and load one delivered file; the outcome and the knowledge time its rows
    got: our first receipt of these bytes (a re-run after a crash keeps it), or under
    ``backdate`` the vendor's ``published`` time (:func:`redelivery_known_at`)."""
    raw = lake.land_raw(feed.name, day, name, data, received_at=received)
    published = redelivery_known_at(raw, rows_known_at(published, raw.received_at, backdate))
    outcome = _ingest_landed(lake, feed, day, name, data, manifest, raw, published, gate)
    if (
        outcome.status in ("loaded", "warned")
        and raw.file_version > 1
        and name == feed.file_name(day)
    ):
        retire_dropped_rows(lake, feed, day, raw, published)
    return outcome, published


def retire_dropped_rows(
    lake: Lake, feed: FeedSpec, day: dt.date, raw: RawFile, known_at: dt.datetime
) -> int:
    """A re-delivery of a day's main file replaces the day: rows of earlier versions whose
    key the new version does not hold are retracted (tombstones at ``known_at``), so a row
    the vendor dropped in a restatement leaves the current view — and stays in the views
    of every earlier time. Returns the rows retracted (idempotent)."""
    spec = get_table(feed.table)
    versions = lake.history("raw_manifest", {"feed": feed.name, "file_name": raw.file_name})
    earlier = [
        silver_batch_id(feed.name, day, raw.file_name, str(r["sha256"]))
        for r in versions.to_pylist()
        if r["valid_date"] == day and int(r["file_version"]) < raw.file_version
    ]
    if not earlier:
        return 0
    new_id = silver_batch_id(feed.name, day, raw.file_name, raw.sha256)
    rows = (
        lake.dataset(feed.table)
        .to_table(
            filter=pc.field("_batch_id").isin(pa.array([*earlier, new_id], pa.string()))
            & (pc.field("valid_date") == pa.scalar(day, pa.date32()))
        )
        .to_pandas()
    )
    if rows.empty:
        return 0
    key = list(spec.key)
    kept = set(map(tuple, rows.loc[rows["_batch_id"] == new_id, key].astype(str).to_numpy()))
    old = rows[rows["_batch_id"] != new_id]
    gone = old[[tuple(k) not in kept for k in old[key].astype(str).to_numpy()]]
    gone = gone.drop_duplicates(subset=key, keep="last")
    if gone.empty:
        return 0
    fields = [f.name for f in spec.input_fields if f.name != "known_at"]
    lake.write(
        feed.table,
        gone[fields].reset_index(drop=True),
        known_at=known_at,
        batch_id=f"retire:{new_id}",
        deleted=True,
    )
    log.warning(
        "%s %s %s: the re-delivery drops %d row(s) of the earlier version: retracted",
        feed.name, day, raw.file_name, len(gone),
    )  # fmt: skip
    return len(gone)


def redelivery_known_at(raw: RawFile, published: dt.datetime) -> dt.datetime:
    """The knowledge time of a delivered file: the vendor's, except for a re-delivery
    (other bytes under a name it already delivered for the day), which we cannot have
    known before we received it — a restatement stamped with the original publish time
    would tie with (and hide) the first version as of its time, and one stamped earlier
    would rewrite what the lake says we knew in the past."""
    if raw.file_version > 1 and raw.received_at > published:
        return raw.received_at
    return published


def _ingest_landed(
    lake: Lake,
    feed: FeedSpec,
    day: dt.date,
    name: str,
    data: bytes,
    manifest: dict[str, Any],
    raw: RawFile,
    published: dt.datetime,
    gate: Gate,
) -> FileOutcome:
    if lake.has_batch(feed.table, silver_batch_id(feed.name, day, name, raw.sha256)):
        unchanged = FileOutcome(feed.name, day, name, raw.sha256, "unchanged", 0, "already loaded")
        return recover_unrecorded(lake, feed, [unchanged])[0]
    problem = delivery_problem(feed, manifest, name, raw.sha256)
    if problem is None:
        try:
            batch = parse_file(feed, name, data)
        except FileFormatError as exc:
            problem = (exc.rule, exc.message)
        else:
            problem = row_count_problem(feed, manifest, name, batch.rows)
    if problem is not None:
        result = file_failure(name, *problem)
        qid = quarantine.record(
            lake,
            feed=feed.name,
            target_table=feed.table,
            day=day,
            raw=raw,
            result=result,
            total_rows=None,
        )
        return FileOutcome(
            feed.name, day, name, raw.sha256, "quarantined", 0, result.message, qid, result.rules
        )
    return gate_and_load(lake, feed, day, raw, batch, published, gate)


#: A session's REST window closes at the vendor's publish time (New York wall time). It
#: must not be later than the ``vendor_ingest`` run (19:00): records published between a
#: window's close and the run would otherwise belong to a window already fetched, and be
#: lost. The SFTP folder of a session is published at the same instant, so once the
#: sensor sees the manifest, the session's REST window is closed too.
REST_WINDOW_CLOSE = dt.time(18, 0)


def rest_window(
    day: dt.date, previous_session: dt.date | None
) -> tuple[dt.datetime | None, dt.datetime]:
    """Publication-time window a session's REST ingestion owns: (prev close, close].

    The close of a session is :data:`REST_WINDOW_CLOSE` in the exchange's time zone on that
    day, so every instant belongs to exactly one session's window and re-running a day
    fetches the same records.
    """
    cal = trading_calendar()

    def close(d: dt.date) -> dt.datetime:
        return cal.at(d, REST_WINDOW_CLOSE)

    return (close(previous_session) if previous_session else None), close(day)


def ingest_rest_day(
    lake: Lake,
    feed: FeedSpec,
    day: dt.date,
    source: RecordSource,
    gate: Gate,
    *,
    previous_session: dt.date | None,
    raise_on_quarantine: bool = True,
    backdate: Backdate | None = None,
) -> list[FileOutcome]:
    """Ingest a REST feed's records published in the session's window (see :func:`rest_window`).

    With ``previous_session=None`` the window starts at the beginning of history (a
    backfill). The records are landed in the raw zone as canonical JSON lines. They are
    known from our receipt (:func:`received_versions`); with ``backdate``, each from its
    own declared publish time.
    """
    assert feed.endpoint is not None
    if previous_session is not None and not _has_runs_before(lake, feed, day):
        # The feed's first session owns everything published before it, exactly as the
        # first window of a backfill does; later sessions own (prev cutoff, cutoff].
        previous_session = None
    since, until = rest_window(day, previous_session)
    if dt.datetime.now(dt.UTC) < until:
        # Fetching an open window would record it as done with records still to come.
        raise FeedNotPublished(feed.name, day, f"{feed.endpoint} (window closes {until})")
    records = source.fetch(feed.endpoint, since, until, feed.page_size)
    name = f"{feed.name}.jsonl"
    data = records_to_jsonl(records)
    received = dt.datetime.now(dt.UTC)
    raw = lake.land_raw(feed.name, day, name, data, received_at=received)
    declared = _parse_times(pa.chunked_array([[r[feed.known_at] for r in records]], pa.string()))
    vendor_latest = max(declared.to_pylist()) if records else None
    if lake.has_batch(feed.table, silver_batch_id(feed.name, day, name, raw.sha256)):
        outcome = FileOutcome(feed.name, day, name, raw.sha256, "unchanged", 0, "already loaded")
        outcome = recover_unrecorded(lake, feed, [outcome])[0]
    elif not records:
        outcome = FileOutcome(feed.name, day, name, raw.sha256, "loaded", 0, "no new records")
    else:
        table = pa.Table.from_pylist(records)
        batch = map_columns(feed, name, table)
        batch, known = received_versions(feed, batch, declared, raw.received_at, backdate)
        outcome = _gate_records(lake, feed, day, raw, batch, known, gate)
    known_at = raw.received_at if backdate is None else vendor_latest
    _ingest_run(lake, outcome, known_at, vendor_latest, backdate)
    if raise_on_quarantine and outcome.status == "quarantined":
        raise BatchQuarantined([outcome])
    return [outcome]


def received_versions(
    feed: FeedSpec,
    batch: ParsedBatch,
    declared: pa.Array,
    received: dt.datetime,
    backdate: Backdate | None,
    batches: np.ndarray | None = None,
) -> tuple[ParsedBatch, pa.Array]:
    """The records of a REST delivery as the lake keeps them, and their knowledge times.

    Under ``backdate`` every record keeps its own declared time (never later than
    ``received``). Otherwise all are known at ``received``: versions of one key received
    together cannot be told apart by knowledge time, so only the latest the vendor
    declares is loaded (per knowledge batch ``batches``, when given) — the raw zone keeps
    them all. Returns the (possibly filtered) batch and one knowledge time per row.
    """
    n = batch.table.num_rows
    if backdate is not None:
        times = [min(t, received) for t in declared.to_pylist()]
        return batch, pa.array(times, pa.timestamp("us", tz="UTC"))
    keep = latest_declared(feed, batch.table, declared, batches)
    if not keep.all():
        log.info(
            "%s %s: %d record(s) superseded by a later version received with them",
            feed.name, batch.file_name, int((~keep).sum()),
        )  # fmt: skip
        batch = ParsedBatch(
            batch.feed, batch.file_name, batch.table.filter(pa.array(keep)), batch.issues
        )
        n = batch.table.num_rows
    return batch, pa.array([received] * n, pa.timestamp("us", tz="UTC"))


def latest_declared(
    feed: FeedSpec, table: pa.Table, declared: pa.Array, batches: np.ndarray | None
) -> np.ndarray:
    """Mask keeping, per table key (and valid date, and knowledge batch), the record the
    vendor declares last (ties: the later record)."""
    spec = get_table(feed.table)
    cols = [c for c in (*spec.key, "valid_date") if c != "known_at" and c in table.column_names]
    if not cols or table.num_rows < 2:
        return np.ones(table.num_rows, dtype=bool)
    frame = table.select(cols).to_pandas()
    frame["_t"] = declared.to_numpy(zero_copy_only=False)
    frame["_i"] = np.arange(len(frame))
    group = list(cols)
    if batches is not None:
        frame["_b"] = batches
        group.append("_b")
    last = frame.sort_values(["_t", "_i"]).groupby(group, dropna=False, sort=False)["_i"].last()
    keep = np.zeros(len(frame), dtype=bool)
    keep[last.to_numpy()] = True
    return keep


def _has_runs_before(lake: Lake, feed: FeedSpec, day: dt.date) -> bool:
    runs = lake.as_of(
        "ingest_runs",
        known_at=dt.datetime.now(dt.UTC),
        valid_at=(ALL_DATES[0], day - dt.timedelta(days=1)),
        filter=pc.field("feed") == feed.name,
        columns=["status"],
    )
    return runs.num_rows > 0


def _parse_times(col: pa.ChunkedArray) -> pa.Array:
    values = [dt.datetime.fromisoformat(v.replace("Z", "+00:00")) for v in col.to_pylist()]
    return pa.array(values, pa.timestamp("us", tz="UTC"))


def _gate_records(
    lake: Lake,
    feed: FeedSpec,
    day: dt.date,
    raw: RawFile,
    batch: ParsedBatch,
    known: pa.Array,
    gate: Gate,
) -> FileOutcome:
    """Like :func:`gate_and_load` for REST records, whose known_at differs per record."""
    latest = max(known.to_pylist()) if len(known) else dt.datetime.now(dt.UTC)
    ctx = GateContext(
        feed=feed.name,
        logical_date=day,
        file_names=(raw.file_name,),
        published_at=latest,
        lake_root=lake.location.root,
    )
    # Judge each record's own known_at (key uniqueness includes it), not one batch instant.
    with_known = batch.table.append_column("known_at", known)
    result = gate(feed, ParsedBatch(batch.feed, batch.file_name, with_known, batch.issues), ctx)
    if result.result_rows:
        _write_validation_results(lake, feed, day, raw, result)
    if result.outcome == "blocked":
        qid = quarantine.record(
            lake,
            feed=feed.name,
            target_table=feed.table,
            day=day,
            raw=raw,
            result=result,
            total_rows=batch.rows,
        )
        return FileOutcome(
            feed.name,
            day,
            raw.file_name,
            raw.sha256,
            "quarantined",
            0,
            result.message,
            qid,
            result.rules,
            data_docs=result.data_docs,
        )
    lake.write(
        feed.table,
        _silver_frame(batch, known),
        batch_id=silver_batch_id(feed.name, day, raw.file_name, raw.sha256),
    )
    status: Status = "warned" if result.outcome == "warned" else "loaded"
    return FileOutcome(
        feed.name,
        day,
        raw.file_name,
        raw.sha256,
        status,
        batch.rows,
        result.message,
        None,
        result.rules,
        data_docs=result.data_docs,
    )


class ReleaseRefused(AlphaFactoryError, RuntimeError):
    """A quarantined batch still fails its contract; it stays quarantined."""


def release(
    lake: Lake,
    qid: str,
    gate: Gate,
    *,
    feeds: dict[str, FeedSpec],
    source: FileSource | None = None,
    drop_failing_rows: bool = False,
    actor: str = "cli",
    reason: str | None = None,
) -> FileOutcome:
    """Re-validate a quarantined batch and load it if it now passes.

    Release is compare-and-swap: if the record's feed, day and file were loaded since from
    a newer delivery (:func:`quarantine.superseded_by`), the record is closed as
    ``superseded`` and nothing is loaded — old bytes never overwrite a newer load. A
    released batch is written at its own delivery's knowledge time (the ``published_at``
    recorded when those bytes arrived; a REST batch: each record's own), never at another
    delivery's, so it cannot tie with or beat a newer version in an as-of read.

    The bytes come from the raw zone — unless ``source`` is given, in which case the file
    is fetched again first (a vendor re-delivery lands as a new raw version and is the one
    validated). A REST batch is not re-fetched here: :class:`ReleaseRefused` says to re-run
    the session, whose newer batch then supersedes the record. With ``drop_failing_rows``
    the rows that fail row-level rules are left out and the rest loaded; a batch-level
    failure (schema, unreadable file) never loads. The record's new version keeps its
    original reasons and notes who released it and why.

    Records that name this one as their upstream blocker (``blocked by Q…``) are then
    re-validated and released too, each audited as released automatically (see
    :attr:`FileOutcome.dependents`; one that still fails stays open).
    Raises :class:`ReleaseRefused` (the record stays open) if the batch still fails.
    """
    rec = quarantine.get_record(lake, qid)
    if rec["status"] != "open":
        raise ReleaseRefused(f"quarantine {qid} is {rec['status']}, not open")
    newer = quarantine.superseded_by(lake, rec)
    if newer is not None:
        outcome = _close_superseded(lake, rec, newer, actor=actor)
    else:
        outcome = _release_open(
            lake,
            rec,
            gate,
            feed=feeds[rec["feed"]],
            source=source,
            drop_failing_rows=drop_failing_rows,
            actor=actor,
            reason=reason,
        )
    outcome.dependents = _release_dependents(lake, qid, gate, feeds=feeds, actor=actor)
    return outcome


def _close_superseded(
    lake: Lake, rec: dict[str, Any], newer: quarantine.NewerLoad, *, actor: str
) -> FileOutcome:
    """Close a record a newer load replaced; its stale bytes are never loaded."""
    newer_batch = newer.describe(rec)
    quarantine.set_status(
        lake,
        rec,
        "superseded",
        actor=actor,
        note=f"superseded by {newer_batch}, loaded since: closed by {actor}, nothing loaded",
    )
    return FileOutcome(
        rec["feed"],
        rec["valid_date"],
        rec["file_name"],
        rec["sha256"],
        "superseded",
        0,
        f"{rec['quarantine_id']} superseded: {newer_batch} was loaded since; "
        "record closed, nothing loaded",
        rec["quarantine_id"],
        json.loads(rec["rules"] or "[]"),
    )


def _release_open(
    lake: Lake,
    rec: dict[str, Any],
    gate: Gate,
    *,
    feed: FeedSpec,
    source: FileSource | None,
    drop_failing_rows: bool,
    actor: str,
    reason: str | None,
) -> FileOutcome:
    """:func:`release` of a record no newer load has superseded."""
    qid: str = rec["quarantine_id"]
    day: dt.date = rec["valid_date"]
    name: str = rec["file_name"]
    # How the quarantined delivery was stamped when it arrived: receipt, or a backdate.
    recorded = _recorded_run(lake, feed.name, day, name, rec["sha256"])
    stamp = (
        Backdate.recorded(str(recorded["backdate"])) if recorded and recorded["backdate"] else None
    )
    if feed.protocol == "rest":
        if source is not None:
            # A REST batch is a publication-time window, not a file: fetching it again is
            # re-running the session, which also records the run and the window's cursor.
            raise ReleaseRefused(
                f"{name}: --refetch does not apply to REST feed {feed.name}: run "
                f"'alphafactory ingest day --date {day} --feed {feed.name}' to fetch the "
                f"session's window again (a changed window loads as a newer batch and "
                f"closes {qid} as superseded)"
            )
        raw = _raw_of(lake, rec)
        batch, declared = _rest_batch(feed, name, lake.read_raw(raw))
        batch, known = received_versions(feed, batch, declared, raw.received_at, stamp)
        outcome = _release_records(
            lake, feed, day, raw, batch, known, gate, drop_failing_rows=drop_failing_rows
        )
        published = max(declared.to_pylist())
        known_at = max(known.to_pylist()) if len(known) else raw.received_at
    else:
        outcome, known_at, published = _release_file(
            lake,
            rec,
            gate,
            feed=feed,
            source=source,
            drop_failing_rows=drop_failing_rows,
            actor=actor,
            recorded=recorded,
        )
    outcome.quarantine_id = qid  # the record it came out of, for the caller's report
    note = f"released by {actor}: {outcome.rows} rows loaded"
    if reason:
        note += f" ({reason})"
    quarantine.set_status(lake, rec, "released", actor=actor, note=note)
    _ingest_run(lake, outcome, known_at, published, stamp)
    return outcome


def _release_file(
    lake: Lake,
    rec: dict[str, Any],
    gate: Gate,
    *,
    feed: FeedSpec,
    source: FileSource | None,
    drop_failing_rows: bool,
    actor: str,
    recorded: dict[str, Any] | None,
) -> tuple[FileOutcome, dt.datetime, dt.datetime | None]:
    """Re-validate and load a file-drop batch; returns the outcome, the knowledge time its
    rows got and the vendor's declared publish time. ``recorded``: how the quarantined
    delivery was stamped (:func:`_recorded_run`)."""
    day: dt.date = rec["valid_date"]
    name: str = rec["file_name"]
    if source is None and "file.checksum" in json.loads(rec["rules"]):
        # The kept bytes are not what the vendor says it sent; only a fetch that matches
        # the vendor's manifest can make them trustworthy.
        raise ReleaseRefused(
            f"{name}: rule file.checksum: fetch the file again from the vendor to verify it "
            "against the manifest before releasing"
        )
    manifest_entry: dict[str, Any] | None = None
    declared: dt.datetime | None = None
    run = recorded
    if source is not None:
        with source.session() as session:
            listing = session.list_dir(feed.remote_folder(day)) or []
            manifest = _manifest(feed, day, session, listing)
            path = feed.remote_path(day, name)
            mtime = session.mtime(path) if feed.known_at == "file_mtime" else None
            declared = declared_time(feed, day, manifest, dt.datetime.now(dt.UTC), mtime)
            manifest_entry = {f["name"]: f for f in manifest.get("files", [])}.get(name)
            data = session.read(path)
        raw = lake.land_raw(feed.name, day, name, data)
    else:
        raw = _raw_of(lake, rec)
        data = lake.read_raw(raw)
    same = (
        run
        if raw.sha256 == rec["sha256"]
        else _recorded_run(lake, feed.name, day, name, raw.sha256)
    )
    if same is not None and same["known_at"] is not None:
        # This delivery's own knowledge time, as recorded when its bytes arrived: another
        # delivery's (a re-send loaded since) would tie with or beat that newer version.
        published: dt.datetime = same["known_at"]
        declared = declared or same["published_at"]
    else:
        # New bytes: known from their receipt (a re-delivery), or under the backdate the
        # quarantined delivery was loaded with.
        backdate = Backdate.recorded(str(run["backdate"])) if run and run["backdate"] else None
        declared = declared or (run["published_at"] if run else None)
        published = redelivery_known_at(raw, rows_known_at(declared, raw.received_at, backdate))
    if manifest_entry is not None and manifest_entry.get("sha256") != raw.sha256:
        raise ReleaseRefused(
            f"{name}: the re-delivered file still does not match the manifest checksum"
        )
    try:
        batch = parse_file(feed, name, data)
    except FileFormatError as exc:
        raise ReleaseRefused(f"{name}: {exc.rule}: {exc.message}") from None
    outcome = gate_and_load(
        lake,
        feed,
        day,
        raw,
        batch,
        published,
        gate,
        drop_failing_rows=drop_failing_rows,
        actor=actor,
    )
    if outcome.status == "quarantined":
        raise ReleaseRefused(f"{name} still fails: {outcome.message}")
    return outcome, published, declared


def _raw_of(lake: Lake, rec: dict[str, Any]) -> RawFile:
    """The raw-zone copy of a quarantine record's bytes (its feed, day, file and sha256)."""
    versions = lake.history("raw_manifest", {"feed": rec["feed"], "file_name": rec["file_name"]})
    mine = [
        r
        for r in versions.to_pylist()
        if r["valid_date"] == rec["valid_date"] and r["sha256"] == rec["sha256"]
    ]
    if not mine:
        raise ReleaseRefused(
            f"{rec['file_name']}: no raw-zone copy of sha256 {str(rec['sha256'])[:16]}… "
            f"for {rec['feed']} {rec['valid_date']}"
        )
    row = mine[-1]
    return RawFile(
        rec["feed"],
        rec["valid_date"],
        rec["file_name"],
        row["sha256"],
        row["size_bytes"],
        row["uri"],
        row["file_version"],
        row["received_at"],
        landed=False,
    )


def _recorded_run(
    lake: Lake, feed: str, day: dt.date, name: str, sha256: str
) -> dict[str, Any] | None:
    """How one delivery (feed, day, file, bytes) was stamped when it first arrived:
    ``known_at`` (its rows' knowledge time), ``published_at`` (the vendor's claim) and
    ``backdate`` (null = receipt time); None if no run recorded it."""
    if lake.table("ingest_runs") is None:
        return None
    runs = [
        r
        for r in lake.history("ingest_runs", {"feed": feed, "file_name": name}).to_pylist()
        if r["valid_date"] == day and r["sha256"] == sha256
    ]
    if not runs:
        return None
    # Runs recorded before rows_known_at existed kept the knowledge time in published_at.
    stamped = [
        {
            "known_at": r.get("rows_known_at") or r["published_at"],
            "published_at": r["published_at"],
            "backdate": r.get("backdate"),
        }
        for r in runs
        if (r.get("rows_known_at") or r["published_at"]) is not None
    ]
    if not stamped:
        return {"known_at": None, "published_at": None, "backdate": runs[0].get("backdate")}
    return min(stamped, key=lambda r: r["known_at"])


def _rest_batch(feed: FeedSpec, name: str, data: bytes) -> tuple[ParsedBatch, pa.Array]:
    """A landed REST batch (canonical JSON lines) parsed as the daily path parses the
    fetched records, with each record's own knowledge time."""
    records = [json.loads(line) for line in data.splitlines() if line.strip()]
    if not records:
        raise ReleaseRefused(f"{name}: the landed REST batch holds no records")
    table = pa.Table.from_pylist(records)
    return map_columns(feed, name, table), _parse_times(table.column(feed.known_at))


def _release_records(
    lake: Lake,
    feed: FeedSpec,
    day: dt.date,
    raw: RawFile,
    batch: ParsedBatch,
    known: pa.Array,
    gate: Gate,
    *,
    drop_failing_rows: bool,
) -> FileOutcome:
    """:func:`_gate_records` for a release: per-record known_at, failing rows optionally
    left out; raises :class:`ReleaseRefused` if the batch still fails."""
    ctx = GateContext(
        feed=feed.name,
        logical_date=day,
        file_names=(raw.file_name,),
        published_at=max(known.to_pylist()),
        lake_root=lake.location.root,
    )
    with_known = batch.table.append_column("known_at", known)
    result = gate(feed, ParsedBatch(batch.feed, batch.file_name, with_known, batch.issues), ctx)
    if result.result_rows:
        _write_validation_results(lake, feed, day, raw, result)
    if result.outcome == "blocked":
        if not drop_failing_rows or result.batch_level:
            raise ReleaseRefused(f"{raw.file_name} still fails: {result.message}")
        keep = pc.invert(
            pc.is_in(pa.array(range(batch.rows), pa.int64()), pa.array(result.failed_rows))
        )
        batch = ParsedBatch(batch.feed, batch.file_name, batch.table.filter(keep), batch.issues)
        known = pc.filter(known, keep)
    lake.write(
        feed.table,
        _silver_frame(batch, known),
        batch_id=silver_batch_id(feed.name, day, raw.file_name, raw.sha256),
    )
    return FileOutcome(
        feed.name,
        day,
        raw.file_name,
        raw.sha256,
        "released",
        batch.rows,
        result.message,
        None,
        result.rules,
    )


def _release_dependents(
    lake: Lake, qid: str, gate: Gate, *, feeds: dict[str, FeedSpec], actor: str
) -> list[FileOutcome]:
    """Release the records blocked by ``qid`` (oldest day first), each re-validated.

    One still blocked by another open upstream record, or still failing, stays open and is
    reported with status ``quarantined``.
    """
    waiting = [
        r
        for r in quarantine.list_records(lake, status=None)
        if r["status"] in ("open", "superseded") and qid in quarantine.blocked_by(r)
    ]
    out: list[FileOutcome] = []
    for dep in sorted(waiting, key=lambda r: (r["valid_date"], r["feed"], r["file_name"])):
        dep_id: str = dep["quarantine_id"]
        still = [
            b
            for b in quarantine.blocked_by(dep)
            if b != qid and quarantine.get_record(lake, b)["status"] == "open"
        ]
        try:
            if still:
                raise ReleaseRefused(f"still blocked by {', '.join(still)}")
            out.append(
                release(
                    lake,
                    dep_id,
                    gate,
                    feeds=feeds,
                    actor=actor,
                    reason=f"automatically, upstream {qid} released",
                )
            )
        except ReleaseRefused as exc:
            out.append(
                FileOutcome(
                    dep["feed"],
                    dep["valid_date"],
                    dep["file_name"],
                    dep["sha256"],
                    "quarantined",
                    0,
                    str(exc),
                    dep_id,
                    json.loads(dep["rules"] or "[]"),
                )
            )
    return out


def _name_upstream_blockers(
    lake: Lake,
    feed: FeedSpec,
    day: dt.date,
    batch: ParsedBatch,
    ctx: GateContext,
    result: GateResult,
) -> GateResult:
    """Name, in a blocked result's message, the open upstream quarantine records holding it
    back: ``blocked by Q…``.

    A batch failing ``security_known`` for ids that an open quarantined batch of a table it
    depends on (``TABLE_DEPENDENCIES``, e.g. the day's security master) would have made
    known is blocked by that record; :func:`release` of it releases this one too. Only
    upstream batches of the same or an earlier day whose bytes parse are consulted.
    """
    upstream = TABLE_DEPENDENCIES.get(feed.table, ())
    if (
        "security_known" not in result.rules
        or not upstream
        or ctx.known_security_ids is None
        or "security_id" not in batch.table.column_names
    ):
        return result
    unknown = {s for s in batch.table.column("security_id").to_pylist() if s is not None}
    unknown -= ctx.known_security_ids
    held = [
        r
        for r in quarantine.list_records(lake, "open")
        if r["target_table"] in upstream and r["valid_date"] <= day
    ]
    if not unknown or not held:
        return result
    specs = load_feeds()
    blockers: list[str] = []
    covered: set[str] = set()
    for rec in sorted(held, key=lambda r: (r["valid_date"], r["feed"], r["file_name"])):
        spec = specs.get(rec["feed"])
        if spec is None:
            continue
        try:
            data = lake.read_raw(_raw_of(lake, rec))
            parsed = (
                _rest_batch(spec, rec["file_name"], data)[0]
                if spec.protocol == "rest"
                else parse_file(spec, rec["file_name"], data)
            )
        except (AlphaFactoryError, ValueError, KeyError):
            continue  # bytes that cannot be read say nothing about which ids they hold
        if "security_id" not in parsed.table.column_names:
            continue
        ids = unknown & set(parsed.table.column("security_id").to_pylist())
        if ids:
            blockers.append(rec["quarantine_id"])
            covered |= ids
    if not blockers:
        return result
    note = (
        f"blocked by {', '.join(blockers)}: {len(covered)} of {len(unknown)} unknown "
        f"security ids are in quarantined upstream batches; released with them"
    )
    return replace(result, message=f"{result.message} ({note})")
