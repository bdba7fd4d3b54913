"""Table maintenance a DAG calls: compaction, z-order, vacuum, checkpoints.

Vacuum only deletes files that left the table more than ``retention_hours`` ago, and the
lake refuses a retention below its configured minimum, so time travel to any version
inside the retention window keeps working.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deltalake import WriterProperties

from pipelines.lake.catalog import all_tables, get_table
from pipelines.lake.files import ROW_GROUP_ROWS
from pipelines.lake.store import Lake


@dataclass
class MaintenanceReport:
    """What maintenance did to one table."""

    table: str
    version_before: int | None
    version_after: int | None = None
    compacted: dict[str, Any] = field(default_factory=dict)
    zordered: dict[str, Any] = field(default_factory=dict)
    vacuumed_files: int = 0
    checkpoint: bool = False
    skipped: str | None = None


def maintain_table(
    lake: Lake,
    name: str,
    *,
    zorder: bool = True,
    retention_hours: int | None = None,
    min_files_for_zorder: int = 8,
    compact: bool = True,
) -> MaintenanceReport:
    """Compact small files, z-order where declared, vacuum, checkpoint and clean old logs.

    ``compact=False`` leaves the data files as they are (vacuum, checkpoint and log
    cleanup only): for a writer whose commits are already large, date-ordered batches (the
    backtest's buffered flushes), where compacting rewrites the whole table every time
    (delta-rs bins every file under its target size) and merges the files' date ranges,
    so reads of a few days can no longer skip files by their bounds."""
    retention = retention_hours if retention_hours is not None else lake.retention_hours
    if retention < lake.retention_hours:
        raise ValueError(
            f"vacuum retention {retention}h is below the lake minimum {lake.retention_hours}h;"
            " it would break time travel inside the retention window"
        )
    spec = get_table(name)
    table = lake.table(name)
    if table is None:
        return MaintenanceReport(name, None, skipped="table does not exist")
    report = MaintenanceReport(name, table.version())
    files = len(table.file_uris())
    # Small row groups keep one-date scans cheap after files are rewritten.
    props = WriterProperties(compression="SNAPPY", max_row_group_size=ROW_GROUP_ROWS)
    if compact and spec.zorder and zorder and files >= min_files_for_zorder:
        report.zordered = table.optimize.z_order(list(spec.zorder), writer_properties=props)
    elif compact:
        report.compacted = table.optimize.compact(writer_properties=props)
    table.update_incremental()
    removed = table.vacuum(
        retention_hours=retention, dry_run=False, enforce_retention_duration=False
    )
    report.vacuumed_files = len(removed)
    table.update_incremental()
    table.create_checkpoint()
    table.cleanup_metadata()
    report.checkpoint = True
    report.version_after = table.version()
    return report


def maintain(
    lake: Lake,
    tables: list[str] | None = None,
    *,
    zorder: bool = True,
    on_table: Callable[[str], None] | None = None,
    compact: bool = True,
) -> list[MaintenanceReport]:
    """Maintain every (or the named) table; ``on_table`` is called before each (progress);
    ``compact`` as in :func:`maintain_table`."""
    reports = []
    for name in tables or sorted(all_tables()):
        if on_table is not None:
            on_table(name)
        reports.append(maintain_table(lake, name, zorder=zorder, compact=compact))
    return reports
