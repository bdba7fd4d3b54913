"""The bitemporal Delta lake: declared tables, point-in-time reads, idempotent writes."""

from pipelines.lake.bitemporal import ValidRange
from pipelines.lake.catalog import all_tables, get_table
from pipelines.lake.errors import LakeError, LakeSchemaError, RawZoneError, UnknownTableError
from pipelines.lake.spec import TableSpec, ValidTime, column
from pipelines.lake.store import Lake, RawFile, WriteResult

__all__ = [
    "Lake",
    "LakeError",
    "LakeSchemaError",
    "RawFile",
    "RawZoneError",
    "TableSpec",
    "UnknownTableError",
    "ValidRange",
    "ValidTime",
    "WriteResult",
    "all_tables",
    "column",
    "get_table",
]
