"""The gate between raw files and silver tables: what a contract check returns.

The ingestion flow depends only on :class:`GateResult` and the :class:`Gate` protocol; the
production gate (:func:`contract_gate`) runs the feed's data contract through Great
Expectations, imported lazily (≈ 4 s) inside the call.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from pipelines.ingest.feed_spec import FeedSpec
from pipelines.ingest.parse import ParsedBatch

log = logging.getLogger(__name__)
Outcome = Literal["passed", "warned", "blocked"]


@dataclass(frozen=True)
class GateContext:
    """Facts about a batch that contract rules compare against."""

    feed: str
    logical_date: dt.date
    file_names: tuple[str, ...]
    published_at: dt.datetime | None = None
    previous_rows: int | None = None
    known_security_ids: frozenset[str] | None = None
    #: Per-row delivery dates when the batch concatenates several days (backfill chunks).
    row_logical_dates: np.ndarray | None = None
    #: Per-row knowledge batch (one label per delivered file or REST session window) when
    #: the batch concatenates several: key uniqueness holds within each, not across them.
    row_batches: np.ndarray | None = None
    #: Securities delisted as known at ``published_at``: id → last trading date.
    delisted: Mapping[str, dt.date] | None = None
    #: The root of the lake the batch is written to: its Data Docs page goes under that
    #: lake's reports (None: the configured lake's).
    lake_root: str | None = None


@dataclass
class GateResult:
    """Outcome of a batch's checks; ``failed_rows`` are positions of blocking row failures."""

    outcome: Outcome
    rules: list[str]
    message: str
    failed_rows: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    batch_level: bool = False  # a rule failed for the batch as a whole (schema, row count…)
    sample: list[dict[str, Any]] = field(default_factory=list)
    result_rows: list[dict[str, Any]] = field(default_factory=list)
    #: The Great Expectations Data Docs page of this run (None when no contract ran).
    data_docs: str | None = None


class Gate(Protocol):
    def __call__(self, feed: FeedSpec, batch: ParsedBatch, ctx: GateContext) -> GateResult: ...


def file_failure(file_name: str, rule: str, message: str) -> GateResult:
    """A blocking result for a file that could not be read or verified at all."""
    return GateResult(
        outcome="blocked",
        rules=[rule],
        message=f"{file_name}: rule {rule}: {message}",
        batch_level=True,
    )


def pass_all(feed: FeedSpec, batch: ParsedBatch, ctx: GateContext) -> GateResult:
    """A gate that accepts everything (for tests of the flow and trusted backfills)."""
    return GateResult(outcome="passed", rules=[], message=f"{batch.file_name}: no contract run")


def _sample_row(row: Any) -> dict[str, Any]:
    return {"file": row.file, "line": row.line, "row": row.index, "values": row.values}


def contract_gate(feed: FeedSpec, batch: ParsedBatch, ctx: GateContext) -> GateResult:
    """Run the feed's data contract (Great Expectations) on a parsed batch.

    The message of a blocked batch names the file, the line and the rule of each failure
    (at most a few file names of a many-file batch). Every run writes its Data Docs page
    (:func:`pipelines.contracts.data_docs.write_validation_page`) and logs where.
    """
    from pipelines.contracts import RowOrigin, ValidationContext, load_contract, validate_frame
    from pipelines.contracts.report import name_files
    from pipelines.ingest.parse import SOURCE_FILE, SOURCE_LINE

    contract = load_contract(feed.contract)
    frame = batch.table.to_pandas()
    if ctx.published_at is not None and "known_at" not in frame.columns:
        frame["known_at"] = ctx.published_at
    report = validate_frame(
        contract,
        frame,
        ValidationContext(
            feed=feed.name,
            logical_date=ctx.logical_date,
            source_files=ctx.file_names,
            previous_row_count=ctx.previous_rows,
            known_security_ids=ctx.known_security_ids,
            expected_publish_time=None,
            row_origin=RowOrigin(file_column=SOURCE_FILE, line_column=SOURCE_LINE),
            row_logical_dates=ctx.row_logical_dates,
            row_batches=ctx.row_batches,
            delisted=ctx.delisted,
        ),
    )
    rows = report.to_rows()
    sample = [_sample_row(s) for f in report.failures for s in f.sample]
    message = (
        "; ".join(f.message for f in report.failures)
        or f"{name_files(ctx.file_names)}: all rules passed"
    )
    issues = [
        f"{i.column}: {i.message}" for i in batch.issues if i.rule != "mapping.unexpected_column"
    ]
    if issues:
        message += " (mapping: " + "; ".join(issues) + ")"
    return GateResult(
        outcome=report.outcome.value,  # type: ignore[arg-type]
        rules=report.failed_rules,
        message=message,
        failed_rows=report.failed_row_indices(),
        batch_level=bool(report.batch_level_failures()),
        sample=sample,
        result_rows=rows,
        data_docs=_data_docs(report, ctx.lake_root),
    )


def _data_docs(report: Any, lake_root: str | None) -> str | None:
    """Write the run's Data Docs page under ``lake_root``'s reports (default: the configured
    lake's); a full disk must not block ingestion, so a failure is logged and the run
    carries no link."""
    from pipelines.contracts.data_docs import data_docs_location, write_validation_page

    try:
        page = write_validation_page(report, data_docs_location(lake_root))
    except (OSError, ValueError) as exc:
        log.warning("Data Docs not written for %s: %s", report.dataset, exc)
        return None
    log.info("Data Docs (%s %s, %s): %s", report.feed, report.logical_date, report.outcome, page)
    return page
