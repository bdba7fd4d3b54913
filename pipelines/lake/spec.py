"""What a lake table declaration is: :class:`TableSpec`, its columns and system fields.

The tables themselves are declared in :mod:`pipelines.lake.catalog`.

A bitemporal table has a business ``key`` plus two time axes:

* **valid time** ``valid_date`` — the business day a fact is about (a price's trade date,
  a fundamental's fiscal period end, a security-master row's effective date);
* **knowledge time** ``known_at`` — when the fact became knowable to us (vendor publish
  time, or receipt time when the vendor does not say).

``ValidTime.POINT`` tables hold one fact per (key, valid_date) — prices, scores.
``ValidTime.EFFECTIVE`` tables hold states that stay in force from ``valid_date`` until the
next ``valid_date`` of the same key — the security master.

The writer adds system columns to every table: ``_batch_id`` (idempotency), ``_ingested_at``
(transaction time in the lake), ``_deleted`` (a vendor retraction is a new tombstone row),
and ``valid_year`` for partitioned tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import pyarrow as pa

UTC_TS = pa.timestamp("us", tz="UTC")


class ValidTime(StrEnum):
    """How valid time is read for a table (see module docstring)."""

    POINT = "point"
    EFFECTIVE = "effective"


SYSTEM_FIELDS: tuple[pa.Field, ...] = (
    pa.field("valid_date", pa.date32(), nullable=False),
    pa.field("known_at", UTC_TS, nullable=False),
    pa.field("_deleted", pa.bool_(), nullable=False),
    pa.field("_batch_id", pa.string(), nullable=False),
    pa.field("_ingested_at", UTC_TS, nullable=False),
)
PARTITION_COLUMN = "valid_year"


@dataclass(frozen=True)
class TableSpec:
    """Declaration of one lake table.

    ``fields`` are the business columns (key and payload); the system fields are added
    by :meth:`arrow_schema`. ``partitioned`` tables are partitioned by ``valid_year`` —
    only worth it for large daily tables.
    """

    name: str
    description: str
    key: tuple[str, ...]
    fields: tuple[pa.Field, ...]
    valid_time: ValidTime = ValidTime.POINT
    partitioned: bool = False
    # Columns maintenance clusters files by (Z-order curve; one column = a plain sort).
    zorder: tuple[str, ...] = ()
    valid_time_meaning: str = "business date the fact is about"

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        missing = [k for k in self.key if k not in names]
        if missing:
            raise ValueError(f"table {self.name}: key columns {missing} not among fields")

    @property
    def input_fields(self) -> tuple[pa.Field, ...]:
        """Columns a caller supplies: business fields, ``valid_date``, ``known_at``."""
        return (*self.fields, SYSTEM_FIELDS[0], SYSTEM_FIELDS[1])

    def arrow_schema(self) -> pa.Schema:
        """The stored schema: business fields, then system fields, then the partition column."""
        cols = [*self.fields, *SYSTEM_FIELDS]
        if self.partitioned:
            cols.append(pa.field(PARTITION_COLUMN, pa.int32(), nullable=False))
        return pa.schema(cols)

    @property
    def column_names(self) -> list[str]:
        return self.arrow_schema().names


def column(name: str, type_: pa.DataType, nullable: bool = True, doc: str = "") -> pa.Field:
    """A table column: an Arrow field whose ``doc`` (if any) is kept as field metadata."""
    meta = {"doc": doc} if doc else None
    return pa.field(name, type_, nullable=nullable, metadata=meta)


@dataclass(frozen=True)
class TableStatus:
    """What ``describe`` reports about a table's physical state."""

    name: str
    exists: bool
    version: int | None = None
    files: int = 0
    rows: int = 0
    size_bytes: int = 0
    last_commit: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
