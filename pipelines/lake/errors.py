"""Errors raised by the lake; each names the table, and where it can, the column and row."""

from __future__ import annotations

from pipelines.errors import AlphaFactoryError


class LakeError(AlphaFactoryError):
    """Base class for lake errors."""


class UnknownTableError(LakeError):
    """The table name is not declared in :mod:`pipelines.lake.catalog`."""

    def __init__(self, table: str, known: list[str]) -> None:
        super().__init__(f"unknown table {table!r}; declared tables: {', '.join(sorted(known))}")
        self.table = table


class LakeSchemaError(LakeError):
    """A frame does not conform to its table's declared schema; nothing was written."""

    def __init__(
        self, table: str, column: str, problem: str, row: int | None = None, value: object = None
    ) -> None:
        where = f"table {table!r}, column {column!r}"
        if row is not None:
            where += f", row {row}"
            if value is not None:
                where += f" (value {value!r})"
        super().__init__(f"{where}: {problem}")
        self.table = table
        self.column = column
        self.row = row
        self.problem = problem


class RawZoneError(LakeError):
    """A raw-zone object could not be stored or does not match its checksum."""
