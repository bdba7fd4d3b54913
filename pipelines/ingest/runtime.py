"""Wire ingestion to the configured vendor: Airflow connections, calendar, feeds, gate.

Both the DAG tasks and the CLI call these, so a day ingested from the command line is
ingested exactly as the scheduler would.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from pipelines.ingest.backfill import (
    DEFAULT_CHUNK_DAYS,
    PhaseTimer,
    backfill_rest,
    backfill_sftp,
)
from pipelines.ingest.connections import HTTP_CONN_ID, SFTP_CONN_ID, ensure_vendor_connections
from pipelines.ingest.feed_index import in_dependency_order
from pipelines.ingest.feed_spec import FeedSpec, load_feeds
from pipelines.ingest.flow import FileOutcome, ingest_rest_day, ingest_sftp_day
from pipelines.ingest.gate import Gate, contract_gate
from pipelines.ingest.knowledge import Backdate
from pipelines.ingest.sources import FileSource, HttpHookSource, RecordSource, SFTPHookSource
from pipelines.lake import Lake
from pipelines.timeline import trading_calendar


@dataclass
class VendorSources:
    files: FileSource
    records: RecordSource


def live_sources(feed: FeedSpec | None = None) -> VendorSources:
    """The vendor through Airflow's SFTP and HTTP hooks.

    With ``feed``, its own ``connection_id`` serves its protocol (one feed = one
    connection: the sensor, the fetch, the backfill and a quarantine release use it);
    the other protocol, and every protocol without ``feed``, uses the embedded defaults
    ``sftp_vendor``/``http_vendor``.
    """
    ensure_vendor_connections()
    sftp, http = SFTP_CONN_ID, HTTP_CONN_ID
    if feed is not None and feed.protocol == "sftp":
        sftp = feed.connection_id
    elif feed is not None:
        http = feed.connection_id
    return VendorSources(SFTPHookSource(sftp), HttpHookSource(http))


def ordered_feeds(feeds: dict[str, FeedSpec], names: list[str] | None = None) -> list[FeedSpec]:
    """Feeds to run in dependency order (the DAG's order): the security master before the
    feeds validated against it, user feeds included (:func:`in_dependency_order`)."""
    chosen = set(names) if names else set(feeds)
    return [f for f in in_dependency_order(list(feeds.values())) if f.name in chosen]


def ingest_day(
    lake: Lake,
    day: dt.date,
    feed_name: str,
    *,
    sources: VendorSources | None = None,
    gate: Gate = contract_gate,
    raise_on_quarantine: bool = True,
    backdate: Backdate | None = None,
) -> list[FileOutcome]:
    """Ingest one feed for one session (the unit of work of a ``vendor_ingest`` task).

    Rows are known from our receipt; ``backdate`` loads them at the vendor's declared
    publish time instead (history, on purpose: recorded in ``ingest_runs``)."""
    feed = load_feeds()[feed_name]
    src = sources or live_sources(feed)
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
            backdate=backdate,
        )
    return ingest_rest_day(
        lake,
        feed,
        day,
        src.records,
        gate,
        previous_session=prev,
        raise_on_quarantine=raise_on_quarantine,
        backdate=backdate,
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
    chunk_days: int = DEFAULT_CHUNK_DAYS,
    timer: PhaseTimer | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
    backdate: Backdate | None = None,
) -> dict[str, list[FileOutcome]]:
    """Backfill ``days`` (sessions, ascending) for every feed; REST feeds in one window.

    File-drop feeds are downloaded together (``workers`` sessions per connection) and
    loaded chunk by chunk of ``chunk_days`` sessions, the security master first. Each feed
    is fetched through its own ``connection_id`` unless ``source_factory`` (tests, the
    in-process simulator) serves every file-drop feed; ``records`` likewise serves every
    REST feed. ``timer`` collects per-phase seconds; ``on_progress(feed, done, total)`` is
    called after each chunk. ``backdate`` loads history at the vendor's declared publish
    times (without it, everything is known from its receipt, now).
    """
    timer = timer or PhaseTimer()
    feeds = ordered_feeds(load_feeds(), feed_names)
    results: dict[str, list[FileOutcome]] = {}
    if source_factory is None:
        if any(f.protocol == "sftp" for f in feeds):
            ensure_vendor_connections()
        source_for: Callable[[str], FileSource] = SFTPHookSource
    else:
        factory = source_factory

        def source_for(connection_id: str) -> FileSource:
            return factory()

    # dependency order; consecutive file-drop feeds are fetched and loaded together
    groups: list[list[FeedSpec]] = []
    for feed in feeds:
        if feed.protocol == "sftp" and groups and groups[-1][0].protocol == "sftp":
            groups[-1].append(feed)
        else:
            groups.append([feed])
    for group in groups:
        if group[0].protocol == "sftp":
            results.update(
                backfill_sftp(
                    lake,
                    group,
                    days,
                    source_for,
                    gate,
                    workers=workers,
                    chunk_days=chunk_days,
                    timer=timer,
                    progress=on_progress,
                    backdate=backdate,
                )
            )
            continue
        (feed,) = group
        with timer.phase(f"rest:{feed.name}"):
            feed_records = records if records is not None else live_sources(feed).records
            results[feed.name] = backfill_rest(
                lake, feed, days, feed_records, gate, backdate=backdate
            )
        if on_progress:
            on_progress(feed.name, 1, 1)
    return results
