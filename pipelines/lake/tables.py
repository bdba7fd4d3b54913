"""Every lake table, declared once.

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

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum

import pyarrow as pa

from pipelines.lake.errors import UnknownTableError

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


_TABLES: dict[str, TableSpec] = {}

#: Modules of later stages that declare their own output tables. Imported on first lookup
#: so the registry is complete whatever the caller imported first (a DAG task importing
#: only this module must see the same tables as the CLI).
STAGE_TABLE_MODULES: tuple[str, ...] = (
    "pipelines.lake.catalog.execution",
    "pipelines.lake.catalog.research",
    "pipelines.lake.catalog.daily",
    "pipelines.lake.catalog.backtest",
    "pipelines.lake.catalog.portfolio",
)
_stages_loaded = False


def _load_stage_tables() -> None:
    global _stages_loaded
    if not _stages_loaded:
        _stages_loaded = True
        for module in STAGE_TABLE_MODULES:
            importlib.import_module(module)


def register(spec: TableSpec) -> TableSpec:
    """Add a table declaration (used below and by later stages declaring their outputs)."""
    if spec.name in _TABLES and _TABLES[spec.name] != spec:
        raise ValueError(f"table {spec.name} declared twice with different specs")
    _TABLES[spec.name] = spec
    return spec


@contextmanager
def temporary_table(spec: TableSpec) -> Iterator[TableSpec]:
    """Declare ``spec`` for the duration of a ``with`` block (tests, experiments).

    The registry is process-wide: a table a test declares must not leak into what later
    code (``all_tables()``, the maintenance DAG) believes the project declares.
    """
    register(spec)
    try:
        yield spec
    finally:
        _TABLES.pop(spec.name, None)


def get_table(name: str) -> TableSpec:
    """The declaration of ``name``; raises :class:`UnknownTableError` listing the known ones."""
    if name not in _TABLES:
        _load_stage_tables()
    try:
        return _TABLES[name]
    except KeyError:
        raise UnknownTableError(name, list(_TABLES)) from None


def all_tables() -> dict[str, TableSpec]:
    """Every declared table, by name."""
    _load_stage_tables()
    return dict(_TABLES)


# --- vendor (silver) tables ---------------------------------------------------------------

PRICES = register(
    TableSpec(
        name="prices",
        description="Unadjusted daily OHLCV per security, as delivered by the price vendor.",
        key=("security_id",),
        fields=(
            column("security_id", pa.string(), False, "permanent security id"),
            column("ticker", pa.string(), doc="ticker on that day"),
            column("open", pa.float64()),
            column("high", pa.float64()),
            column("low", pa.float64()),
            column("close", pa.float64(), False),
            column("volume", pa.float64(), doc="shares traded"),
            column("currency", pa.string()),
        ),
        partitioned=True,
        # Clustered by date alone: the hot read is "all securities on one date".
        # Z-ordering by (security, date) spread each date over every row group
        # (snapshot 53 ms -> 505 ms in bench/lake.py).
        zorder=("valid_date",),
        valid_time_meaning="trade date",
    )
)

CORPORATE_ACTIONS = register(
    TableSpec(
        name="corporate_actions",
        description="Splits and cash dividends; valid_date is the ex-date, known_at the announcement.",
        key=("security_id", "action_type"),
        fields=(
            column("security_id", pa.string(), False),
            column("action_type", pa.string(), False, "split | dividend"),
            column("ratio", pa.float64(), doc="split: new shares per old share"),
            column("amount", pa.float64(), doc="dividend per share, in currency"),
            column("currency", pa.string()),
            column("announce_date", pa.date32()),
        ),
        valid_time_meaning="ex-date",
    )
)

SECURITY_MASTER = register(
    TableSpec(
        name="security_master",
        description="Security reference data; each row is in force from valid_date until the next.",
        key=("security_id",),
        fields=(
            column("security_id", pa.string(), False),
            column("ticker", pa.string()),
            column("name", pa.string()),
            column("sector", pa.string()),
            column("exchange", pa.string()),
            column("currency", pa.string()),
            column("listed", pa.bool_(), doc="false from the delisting date on"),
            column("list_date", pa.date32()),
            column("delist_date", pa.date32()),
        ),
        valid_time=ValidTime.EFFECTIVE,
        valid_time_meaning="effective date of this version of the reference data",
    )
)

FUNDAMENTALS = register(
    TableSpec(
        name="fundamentals",
        description="Quarterly fundamentals; restatements are new rows with a later known_at.",
        key=("security_id", "fiscal_period"),
        fields=(
            column("security_id", pa.string(), False),
            column("fiscal_period", pa.string(), False, "e.g. 2024Q3"),
            column("revenue", pa.float64()),
            column("net_income", pa.float64()),
            column("book_equity", pa.float64()),
            column("total_assets", pa.float64()),
            column("operating_cash_flow", pa.float64()),
            column("shares_outstanding", pa.float64()),
        ),
        valid_time_meaning="fiscal period end",
    )
)

SENTIMENT = register(
    TableSpec(
        name="sentiment",
        description="Alternative data: daily news sentiment per security.",
        key=("security_id",),
        fields=(
            column("security_id", pa.string(), False),
            column("sentiment", pa.float64()),
            column("article_count", pa.int64()),
        ),
        partitioned=True,
        zorder=("valid_date",),
        valid_time_meaning="news date",
    )
)

# --- lake bookkeeping ---------------------------------------------------------------------

RAW_MANIFEST = register(
    TableSpec(
        name="raw_manifest",
        description="Every vendor file landed in the raw zone; a new sha256 for a name is a new version.",
        key=("feed", "file_name"),
        fields=(
            column("feed", pa.string(), False),
            column("file_name", pa.string(), False),
            column("sha256", pa.string(), False),
            column("size_bytes", pa.int64(), False),
            column("uri", pa.string(), False),
            column("file_version", pa.int32(), False, "1 for the first bytes seen under this name"),
            column("received_at", UTC_TS, False),
        ),
        valid_time_meaning="logical (business) date of the delivery",
    )
)


QUARANTINE = register(
    TableSpec(
        name="quarantine",
        description="Vendor batches held back by a blocking contract rule; status changes are new versions.",
        key=("quarantine_id",),
        fields=(
            column("quarantine_id", pa.string(), False, "stable id: feed, day, file and sha256"),
            column("feed", pa.string(), False),
            column("target_table", pa.string(), False),
            column("file_name", pa.string(), False),
            column("sha256", pa.string()),
            column("raw_uri", pa.string()),
            column("status", pa.string(), False, "open | released | dropped"),
            column("rules", pa.string(), False, "JSON list of failing rule names"),
            column("failed_rows", pa.int64()),
            column("total_rows", pa.int64()),
            column("sample", pa.string(), doc="JSON: failing rows with file line and values"),
            column("message", pa.string(), False),
            column("actor", pa.string(), doc="who changed the status (release)"),
        ),
        valid_time_meaning="logical (business) date of the delivery",
    )
)

VALIDATION_RESULTS = register(
    TableSpec(
        name="validation_results",
        description="One row per contract rule evaluated on a vendor batch.",
        key=("run_id", "rule"),
        fields=(
            column("run_id", pa.string(), False, "feed, file, sha256 and contract version"),
            column("dataset", pa.string(), False),
            column("feed", pa.string(), False),
            column("file_name", pa.string()),
            column("rule", pa.string(), False),
            column("expectation", pa.string()),
            column("policy", pa.string()),
            column("success", pa.bool_(), False),
            column("skipped", pa.bool_()),
            column("outcome", pa.string(), doc="passed | warned | blocked (the batch's)"),
            column("unexpected_count", pa.int64()),
            column("unexpected_percent", pa.float64()),
            column("sample", pa.string(), doc="JSON sample of failing rows"),
            column("message", pa.string()),
            column("rows", pa.int64()),
        ),
        valid_time_meaning="logical (business) date of the delivery",
    )
)

INGEST_RUNS = register(
    TableSpec(
        name="ingest_runs",
        description="What each ingestion of a feed for a day did (freshness and audit).",
        key=("feed", "file_name"),
        fields=(
            column("feed", pa.string(), False),
            column("file_name", pa.string(), False),
            column("sha256", pa.string()),
            column("status", pa.string(), False, "loaded | quarantined | warned | released"),
            column("rows", pa.int64()),
            column("published_at", UTC_TS),
            column("message", pa.string()),
        ),
        valid_time_meaning="logical (business) date of the delivery",
    )
)


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
