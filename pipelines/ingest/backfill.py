"""Backfill history: many days of a feed fetched in parallel, validated and loaded in chunks.

The daily path validates one file per run; for years of history the fixed cost of a
contract run (≈ a second) would dominate, so files are grouped into chunks, validated
once per chunk, and failing rows are traced back to their files: a file with a blocking
failure is quarantined whole, the rest of the chunk loads. Every file still gets its own
silver batch id, so a later daily run of the same day adds nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from pipelines.ingest import quarantine
from pipelines.ingest.feed_spec import FeedSpec
from pipelines.ingest.flow import (
    FileOutcome,
    _published_at,
    _write_validation_results,
    record_runs,
    silver_batch_id,
)
from pipelines.ingest.gate import Gate, GateContext, GateResult, file_failure
from pipelines.ingest.parse import (
    SOURCE_FILE,
    SOURCE_LINE,
    FileFormatError,
    ParsedBatch,
    parse_file,
)
from pipelines.ingest.sources import FileSource
from pipelines.lake import Lake, RawFile

log = logging.getLogger(__name__)


@dataclass
class _Fetched:
    day: dt.date
    name: str
    data: bytes | None
    manifest: dict[str, Any]
    received: dt.datetime


def fetch_days(
    feed: FeedSpec,
    days: list[dt.date],
    source_factory: Callable[[], FileSource],
    *,
    workers: int = 4,
    progress: Callable[[int], None] | None = None,
) -> list[_Fetched]:
    """Download the feed's file (and manifest) for each day, ``workers`` connections at once.

    Days whose folder is absent are returned with ``data=None``.
    """
    chunks = [days[i::workers] for i in range(workers)]

    def work(part: list[dt.date]) -> list[_Fetched]:
        out: list[_Fetched] = []
        with source_factory().session() as session:
            for day in part:
                listing = session.list_dir(feed.remote_path(day, "").rstrip("/"))
                received = dt.datetime.now(dt.UTC)
                if listing is None or (feed.manifest and feed.manifest not in listing):
                    out.append(_Fetched(day, feed.file or "", None, {}, received))
                else:
                    manifest = (
                        json.loads(session.read(feed.remote_path(day, feed.manifest)))
                        if feed.manifest
                        else {}
                    )
                    names = [feed.file or ""]
                    names += [
                        n
                        for n in listing
                        if feed.corrections
                        and n.startswith(feed.corrections.split("{")[0])
                        and n != feed.file
                    ]
                    for name in names:
                        out.append(
                            _Fetched(
                                day,
                                name,
                                session.read(feed.remote_path(day, name)),
                                manifest,
                                received,
                            )
                        )
                if progress is not None:
                    progress(1)
        return out

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = [f for part in pool.map(work, [c for c in chunks if c]) for f in part]
    return sorted(results, key=lambda f: (f.day, f.name != feed.file, f.name))


def backfill_feed(
    lake: Lake,
    feed: FeedSpec,
    fetched: list[_Fetched],
    gate: Gate,
    *,
    chunk_days: int = 126,
    progress: Callable[[int], None] | None = None,
) -> list[FileOutcome]:
    """Land, validate and load fetched files in chunks of ``chunk_days`` days."""
    outcomes: list[FileOutcome] = []
    days = sorted({f.day for f in fetched})
    for start in range(0, len(days), chunk_days):
        window = set(days[start : start + chunk_days])
        part = [f for f in fetched if f.day in window]
        outcomes += _load_chunk(lake, feed, part, gate)
        if progress is not None:
            progress(len(window))
    return outcomes


def _load_chunk(lake: Lake, feed: FeedSpec, part: list[_Fetched], gate: Gate) -> list[FileOutcome]:
    outcomes: list[FileOutcome] = []
    batches: list[tuple[_Fetched, RawFile, ParsedBatch, dt.datetime]] = []
    present = [f for f in part if f.data is not None]
    landed = lake.land_raw_many([(feed.name, f.day, f.name, f.data or b"") for f in present])
    for f, raw in zip(present, landed, strict=True):
        published = _published_at(feed, f.manifest, f.received)
        if lake.has_batch(feed.table, silver_batch_id(feed.name, f.day, f.name, raw.sha256)):
            outcomes.append(FileOutcome(feed.name, f.day, f.name, raw.sha256, "unchanged"))
            continue
        entry = {e["name"]: e for e in f.manifest.get("files", [])}.get(f.name)
        failure: GateResult | None = None
        if entry is not None and entry.get("sha256") != raw.sha256:
            failure = file_failure(f.name, "file.checksum", "sha256 does not match the manifest")
        else:
            try:
                batch = parse_file(feed, f"{f.day.isoformat()}/{f.name}", f.data or b"")
            except FileFormatError as exc:
                failure = file_failure(f.name, exc.rule, exc.message)
        if failure is not None:
            qid = quarantine.record(
                lake,
                feed=feed.name,
                target_table=feed.table,
                day=f.day,
                raw=raw,
                result=failure,
                total_rows=None,
            )
            outcomes.append(
                FileOutcome(
                    feed.name,
                    f.day,
                    f.name,
                    raw.sha256,
                    "quarantined",
                    0,
                    failure.message,
                    qid,
                    failure.rules,
                )
            )
            continue
        if batch.issues and any(i.rule != "mapping.unexpected_column" for i in batch.issues):
            # Schema drift is a batch-level problem of this one file: gate it alone.
            outcomes.append(_gate_single(lake, feed, f, raw, batch, published, gate))
            continue
        batches.append((f, raw, batch, published))
    if not batches:
        record_runs(lake, [(o, None) for o in outcomes])
        return outcomes
    tables = [b.table for _, _, b, _ in batches]
    combined = pa.concat_tables(tables, promote_options="permissive")
    owner = np.repeat(np.arange(len(batches)), [t.num_rows for t in tables])
    last = batches[-1]
    ctx = GateContext(
        feed=feed.name,
        logical_date=last[0].day,
        file_names=tuple(f"{f.day}/{f.name}" for f, _, _, _ in batches),
        published_at=max(p for _, _, _, p in batches),
        row_logical_dates=np.array([f.day for f, _, _, _ in batches], dtype="datetime64[D]")[owner],
        known_security_ids=None
        if feed.table == "security_master"
        else frozenset(
            lake.as_of(
                "security_master",
                known_at=max(p for _, _, _, p in batches),
                valid_at=(batches[0][0].day, last[0].day),
                columns=["listed"],
            )
            .column("security_id")
            .to_pylist()
        ),
    )
    result = gate(feed, ParsedBatch(feed.name, "chunk", combined), ctx)
    bad_files = set(owner[result.failed_rows].tolist()) if result.outcome == "blocked" else set()
    if result.outcome == "blocked" and result.batch_level:
        bad_files = set(range(len(batches)))
    keep_rows = ~np.isin(owner, sorted(bad_files))
    for i, (f, raw, batch, _) in enumerate(batches):
        if i in bad_files:
            mine = result.failed_rows[owner[result.failed_rows] == i] - int(
                np.flatnonzero(owner == i)[0]
            )
            sub = GateResult(
                "blocked",
                result.rules,
                f"{f.day}/{f.name}: {result.message}",
                mine,
                result.batch_level,
                [s for s in result.sample if str(s.get("file", "")).startswith(f"{f.day}/")],
            )
            qid = quarantine.record(
                lake,
                feed=feed.name,
                target_table=feed.table,
                day=f.day,
                raw=raw,
                result=sub,
                total_rows=batch.rows,
            )
            outcomes.append(
                FileOutcome(
                    feed.name,
                    f.day,
                    f.name,
                    raw.sha256,
                    "quarantined",
                    0,
                    sub.message,
                    qid,
                    result.rules,
                )
            )
        else:
            outcomes.append(
                FileOutcome(
                    feed.name,
                    f.day,
                    f.name,
                    raw.sha256,
                    "warned" if result.outcome == "warned" else "loaded",
                    batch.rows,
                    "",
                )
            )
    good = combined.filter(pa.array(keep_rows))
    good_owner = owner[keep_rows]
    ids = [silver_batch_id(feed.name, f.day, f.name, raw.sha256) for f, raw, _, _ in batches]
    known = pa.array([batches[i][3] for i in good_owner], pa.timestamp("us", tz="UTC"))
    frame = good.drop_columns([c for c in (SOURCE_FILE, SOURCE_LINE) if c in good.column_names])
    lake.write(
        feed.table,
        frame.append_column("known_at", known),
        row_batch_ids=pa.array([ids[i] for i in good_owner], pa.string()),
        # Files with no rows (a quiet day for corporate actions) are marked loaded too.
        empty_batch_ids=[
            ids[i] for i, (_, _, b, _) in enumerate(batches) if b.rows == 0 and i not in bad_files
        ],
        batch_id=f"{feed.name}:chunk:{batches[0][0].day}:{last[0].day}",
    )
    if result.result_rows:
        _write_validation_results(lake, feed, last[0].day, batches[-1][1], result)
    published_by_day = {f.day: p for f, _, _, p in batches}
    record_runs(lake, [(o, published_by_day.get(o.logical_date)) for o in outcomes])
    return outcomes


def _gate_single(
    lake: Lake,
    feed: FeedSpec,
    f: _Fetched,
    raw: RawFile,
    batch: ParsedBatch,
    published: dt.datetime,
    gate: Gate,
) -> FileOutcome:
    from pipelines.ingest.flow import gate_and_load

    return gate_and_load(lake, feed, f.day, raw, batch, published, gate)


def backfill_rest(
    lake: Lake,
    feed: FeedSpec,
    days: list[dt.date],
    source: Any,
    gate: Gate,
    *,
    chunk_days: int = 252,
) -> list[FileOutcome]:
    """Backfill a REST feed: one fetch, then one batch per session window.

    Records are bucketed by the same publication-time windows the daily path uses
    (:func:`~pipelines.ingest.flow.rest_window`), so each session's batch — and its raw
    file and silver batch id — is exactly what a daily run of that session produces.
    """
    import bisect

    from pipelines.ingest.flow import _parse_times, rest_window
    from pipelines.ingest.parse import map_columns
    from pipelines.ingest.sources import records_to_jsonl

    assert feed.endpoint is not None
    _, until = rest_window(days[-1], None)
    records = source.fetch(feed.endpoint, None, until, feed.page_size)
    cutoffs = [rest_window(d, None)[1] for d in days]
    times = (
        _parse_times(
            pa.chunked_array([pa.array([r[feed.known_at] for r in records], pa.string())])
        ).to_pylist()
        if records
        else []
    )
    buckets: dict[int, list[dict[str, Any]]] = {}
    for rec, ts in zip(records, times, strict=True):
        buckets.setdefault(bisect.bisect_left(cutoffs, ts), []).append(rec)
    name = f"{feed.name}.jsonl"
    outcomes: list[FileOutcome] = []
    for start in range(0, len(days), chunk_days):
        idx = list(range(start, min(start + chunk_days, len(days))))
        datas = [records_to_jsonl(buckets.get(i, [])) for i in idx]
        raws = lake.land_raw_many(
            [(feed.name, days[i], name, d) for i, d in zip(idx, datas, strict=True)]
        )
        todo = [
            (i, raw)
            for i, raw in zip(idx, raws, strict=True)
            if not lake.has_batch(feed.table, silver_batch_id(feed.name, days[i], name, raw.sha256))
        ]
        outcomes += [
            FileOutcome(feed.name, days[i], name, raw.sha256, "unchanged")
            for i, raw in zip(idx, raws, strict=True)
            if (i, raw) not in todo
        ]
        rows = [r for i, _ in todo for r in buckets.get(i, [])]
        if not todo:
            continue
        owner = np.array(
            [k for k, (i, _) in enumerate(todo) for _ in buckets.get(i, [])], dtype=np.int64
        )
        ids = [silver_batch_id(feed.name, days[i], name, raw.sha256) for i, raw in todo]
        if rows:
            table = pa.Table.from_pylist(rows)
            batch = map_columns(feed, name, table)
            known = _parse_times(table.column(feed.known_at))
            ctx = GateContext(
                feed=feed.name,
                logical_date=days[idx[-1]],
                file_names=(name,),
                published_at=max(known.to_pylist()),
                row_logical_dates=np.array([days[i] for i, _ in todo], dtype="datetime64[D]")[
                    owner
                ],
            )
            result = gate(feed, batch, ctx)
        else:
            batch, known, result = None, None, GateResult("passed", [], "no records")
        bad = set(owner[result.failed_rows].tolist()) if result.outcome == "blocked" else set()
        if result.outcome == "blocked" and result.batch_level:
            bad = set(range(len(todo)))
        for k, (i, raw) in enumerate(todo):
            if k in bad:
                qid = quarantine.record(
                    lake,
                    feed=feed.name,
                    target_table=feed.table,
                    day=days[i],
                    raw=raw,
                    result=result,
                    total_rows=len(buckets.get(i, [])),
                )
                outcomes.append(
                    FileOutcome(
                        feed.name,
                        days[i],
                        name,
                        raw.sha256,
                        "quarantined",
                        0,
                        result.message,
                        qid,
                        result.rules,
                    )
                )
            else:
                outcomes.append(
                    FileOutcome(
                        feed.name, days[i], name, raw.sha256, "loaded", len(buckets.get(i, []))
                    )
                )
        if batch is not None and known is not None:
            keep = ~np.isin(owner, sorted(bad))
            frame = batch.table.filter(pa.array(keep))
            frame = frame.drop_columns(
                [c for c in (SOURCE_FILE, SOURCE_LINE) if c in frame.column_names]
            )
            frame = frame.append_column("known_at", known.filter(pa.array(keep)))
            lake.write(
                feed.table,
                frame,
                row_batch_ids=pa.array([ids[k] for k in owner[keep]], pa.string()),
                empty_batch_ids=[
                    ids[k] for k, (i, _) in enumerate(todo) if not buckets.get(i) and k not in bad
                ],
                batch_id=f"{feed.name}:chunk:{days[idx[0]]}:{days[idx[-1]]}",
            )
        else:
            lake.write(
                feed.table,
                _no_rows(feed),
                empty_batch_ids=ids,
                batch_id=f"{feed.name}:chunk:{days[idx[0]]}:{days[idx[-1]]}",
            )
        if result.result_rows:
            _write_validation_results(lake, feed, days[idx[-1]], raws[-1], result)
    record_runs(lake, [(o, None) for o in outcomes])
    return outcomes


def _no_rows(feed: FeedSpec) -> pa.Table:
    from pipelines.lake.tables import get_table

    fields = [f for f in get_table(feed.table).input_fields]
    return pa.schema(fields).empty_table()
