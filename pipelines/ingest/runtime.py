"""Wire ingestion to the configured vendor: Airflow connections, calendar, feeds, gate.

Both the DAG tasks and the CLI call these, so a day ingested from the command line is
ingested exactly as the scheduler would.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from pipelines.ingest.backfill import PhaseTimer, backfill_rest, backfill_sftp
from pipelines.ingest.connections import ensure_vendor_connections
from pipelines.ingest.feed_spec import FeedSpec, load_feeds
from pipelines.ingest.flow import FileOutcome, ingest_rest_day, ingest_sftp_day
from pipelines.ingest.gate import Gate, contract_gate
from pipelines.ingest.sources import FileSource, HttpHookSource, RecordSource, SFTPHookSource
from pipelines.lake import Lake
from pipelines.timeline import trading_calendar

#: Order matters: prices are checked against the security master as known that day.
SFTP_ORDER = ("vendor_security_master", "vendor_corporate_actions", "vendor_prices")


@dataclass
class VendorSources:
    files: FileSource
    records: RecordSource


def live_sources() -> VendorSources:
    """The vendor through Airflow's SFTP and HTTP hooks (connections ``sftp_vendor``/``http_vendor``)."""
    ensure_vendor_connections()
    return VendorSources(SFTPHookSource("sftp_vendor"), HttpHookSource("http_vendor"))


def ordered_feeds(feeds: dict[str, FeedSpec], names: list[str] | None = None) -> list[FeedSpec]:
    """Feeds to run, the security master first (others are validated against it)."""
    chosen = [feeds[n] for n in names] if names else list(feeds.values())
    rank = {n: i for i, n in enumerate(SFTP_ORDER)}
    return sorted(chosen, key=lambda f: (f.protocol != "sftp", rank.get(f.name, 99), f.name))


def ingest_day(
    lake: Lake,
    day: dt.date,
    feed_name: str,
    *,
    sources: VendorSources | None = None,
    gate: Gate = contract_gate,
    raise_on_quarantine: bool = True,
) -> list[FileOutcome]:
    """Ingest one feed for one session (the unit of work of a ``vendor_ingest`` task)."""
    feed = load_feeds()[feed_name]
    src = sources or live_sources()
    prev = trading_calendar().previous(day)
    if feed.protocol == "sftp":
        return ingest_sftp_day(
            lake,
            feed,
            day,
            src.files,
            gate,
            previous_session=prev,
            raise_on_quarantine=raise_on_quarantine,
        )
    return ingest_rest_day(
        lake,
        feed,
        day,
        src.records,
        gate,
        previous_session=prev,
        raise_on_quarantine=raise_on_quarantine,
    )


def backfill(
    lake: Lake,
    days: list[dt.date],
    *,
    feed_names: list[str] | None = None,
    source_factory: Callable[[], FileSource] | None = None,
    records: RecordSource | None = None,
    gate: Gate = contract_gate,
    workers: int = 4,
    chunk_days: int = 126,
    timer: PhaseTimer | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, list[FileOutcome]]:
    """Backfill ``days`` (sessions, ascending) for every feed; REST feeds in one window.

    File-drop feeds are downloaded together (``workers`` connections) and loaded chunk by
    chunk of ``chunk_days`` sessions, the security master first. ``timer`` collects
    per-phase seconds; ``on_progress(feed, done, total)`` is called after each chunk.
    """
    timer = timer or PhaseTimer()
    feeds = ordered_feeds(load_feeds(), feed_names)
    file_feeds = [f for f in feeds if f.protocol == "sftp"]
    results: dict[str, list[FileOutcome]] = {}
    if file_feeds:
        if source_factory is None:
            ensure_vendor_connections()

            def source_factory() -> FileSource:
                return SFTPHookSource("sftp_vendor")

        results.update(
            backfill_sftp(
                lake,
                file_feeds,
                days,
                source_factory,
                gate,
                workers=workers,
                chunk_days=chunk_days,
                timer=timer,
                progress=on_progress,
            )
        )
    for feed in feeds:
        if feed.protocol == "sftp":
            continue
        if records is None:
            records = live_sources().records
        with timer.phase(f"rest:{feed.name}"):
            results[feed.name] = backfill_rest(lake, feed, days, records, gate)
        if on_progress:
            on_progress(feed.name, 1, 1)
    return results
