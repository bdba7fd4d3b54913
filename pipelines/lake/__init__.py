"""The bitemporal Delta lake: declared tables, point-in-time reads, idempotent writes."""

from pipelines.lake.bitemporal import ValidRange
from pipelines.lake.errors import LakeError, LakeSchemaError, RawZoneError, UnknownTableError
from pipelines.lake.store import Lake, RawFile, WriteResult
from pipelines.lake.tables import (
    TableSpec,
    ValidTime,
    all_tables,
    column,
    get_table,
    register,
)

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
    "register",
]
