"""Where tables live and how they are opened: local filesystem or S3, one code path."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError
from deltalake.schema import Schema

from pipelines.lake.errors import LakeSchemaError
from pipelines.lake.spec import TableSpec


@dataclass
class LakeLocation:
    """A lake root (``/path`` or ``s3://bucket/prefix``) with its object-store options."""

    root: str
    storage_options: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.is_s3:
            self.root = str(Path(self.root).expanduser().resolve())
        self.root = self.root.rstrip("/")

    @property
    def is_s3(self) -> bool:
        return self.root.startswith("s3://")

    def table_uri(self, name: str) -> str:
        return f"{self.root}/tables/{name}"

    def raw_uri(self) -> str:
        return f"{self.root}/raw"

    def options(self) -> dict[str, str] | None:
        return dict(self.storage_options) or None


def s3_bucket_and_prefix(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` → ``("bucket", "some/prefix")``."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return bucket, prefix.strip("/")


def s3_client(storage_options: dict[str, str] | None) -> Any:
    """A boto3 S3 client for the lake's storage options (endpoint, region, credentials)."""
    import boto3

    opts = storage_options or {}
    return boto3.client(
        "s3",
        endpoint_url=opts.get("AWS_ENDPOINT_URL"),
        region_name=opts.get("AWS_REGION", "us-east-1"),
        aws_access_key_id=opts.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=opts.get("AWS_SECRET_ACCESS_KEY"),
        aws_session_token=opts.get("AWS_SESSION_TOKEN"),
    )


def table_configuration(checkpoint_interval: int, retention_hours: int) -> dict[str, str | None]:
    """Delta table properties every lake table is created with.

    Log retention is longer than file retention so that the commit history explaining a
    version outlives the files it references.
    """
    return {
        "delta.checkpointInterval": str(checkpoint_interval),
        "delta.deletedFileRetentionDuration": f"interval {retention_hours} hours",
        "delta.logRetentionDuration": f"interval {max(retention_hours, 720)} hours",
        # Stats on every column let scans skip files by valid_date and known_at.
        "delta.dataSkippingNumIndexedCols": "-1",
    }


def open_table(loc: LakeLocation, spec: TableSpec) -> DeltaTable | None:
    """The table's latest version, or None when it has never been written.

    A table written by an earlier version of the code may lack columns declared since:
    nullable ones are added (existing rows read as null), so an existing lake keeps
    working after an upgrade; a missing NOT NULL column is a :class:`LakeSchemaError`.
    """
    try:
        table = DeltaTable(loc.table_uri(spec.name), storage_options=loc.options())
    except TableNotFoundError:
        return None
    return add_declared_columns(table, spec)


def add_declared_columns(table: DeltaTable, spec: TableSpec) -> DeltaTable:
    """``table`` with every declared column it lacks added (nullable ones only)."""
    error: Exception | None = None
    for _attempt in range(3):
        have = {f.name for f in table.schema().fields}
        missing = [f for f in spec.arrow_schema() if f.name not in have]
        if not missing:
            return table
        required = [f.name for f in missing if not f.nullable]
        if required:
            raise LakeSchemaError(
                spec.name,
                required[0],
                "declared NOT NULL but absent from the stored table (written by an older "
                "version): existing rows have no value for it; rebuild or backfill the table",
            )
        try:
            table.alter.add_columns(list(Schema.from_arrow(pa.schema(missing)).fields))
        except DeltaError as exc:  # e.g. another process added them first: look again
            error = exc
        table.update_incremental()
    raise LakeSchemaError(
        spec.name, missing[0].name, f"could not add the declared column to the table: {error}"
    )


def create_table(
    loc: LakeLocation, spec: TableSpec, checkpoint_interval: int, retention_hours: int
) -> DeltaTable:
    """Create the table empty with its declared schema (a no-op when it exists)."""
    partition = ["valid_year"] if spec.partitioned else None
    try:
        return DeltaTable.create(
            loc.table_uri(spec.name),
            spec.arrow_schema(),
            mode="ignore",
            partition_by=partition,
            name=spec.name,
            description=spec.description,
            configuration=table_configuration(checkpoint_interval, retention_hours),
            storage_options=loc.options(),
        )
    except Exception:
        # Another process may have created it between our check and our commit.
        existing = open_table(loc, spec)
        if existing is None:
            raise
        return existing
