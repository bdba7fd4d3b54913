"""Turn a vendor file's bytes into rows shaped like the feed's lake table.

Parsing is deliberately tolerant: a renamed or retyped vendor column does not raise here.
The column is left out, or kept as text, and recorded as a :class:`MappingIssue`, so the
data contract can name the problem (file, row, rule) and the batch is quarantined rather
than lost. Only bytes that cannot be read at all raise :class:`FileFormatError`.
"""

from __future__ import annotations

import gzip
import io
import zlib
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipelines.errors import AlphaFactoryError
from pipelines.ingest.feed_spec import FeedSpec, SqlExpr
from pipelines.lake.catalog import get_table
from pipelines.sql_files import quote_ident

SOURCE_FILE = "_source_file"
SOURCE_LINE = "_source_line"


class FileFormatError(AlphaFactoryError, ValueError):
    """The file's bytes cannot be read; ``rule`` names the check that failed."""

    def __init__(self, file_name: str, rule: str, message: str) -> None:
        super().__init__(f"{file_name}: {rule}: {message}")
        self.file_name = file_name
        self.rule = rule
        self.message = message


@dataclass(frozen=True)
class MappingIssue:
    """A lake column the vendor file could not fill or type as declared."""

    column: str
    rule: str  # mapping.missing_source | mapping.expression | type.unparseable
    message: str


@dataclass
class ParsedBatch:
    """Rows of one vendor file (or REST page set) mapped onto lake column names."""

    feed: str
    file_name: str
    table: pa.Table
    issues: list[MappingIssue] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.table.num_rows


def decode(feed: FeedSpec, file_name: str, data: bytes) -> pa.Table:
    """Decompress and read a file; every CSV column as text (typing happens in mapping).

    In a CSV an empty field is null and nothing else is: ``NA`` stays the text ``NA``.
    """
    if feed.compression == "gzip":
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as exc:
            raise FileFormatError(
                file_name, "file.decompress", f"not a complete gzip stream ({exc})"
            ) from None
    if feed.format == "parquet":
        try:
            return pq.read_table(io.BytesIO(data))
        except pa.ArrowInvalid as exc:
            raise FileFormatError(file_name, "file.parse", str(exc)) from None
    try:
        text = data.decode(feed.encoding)
    except UnicodeDecodeError as exc:
        raise FileFormatError(file_name, "file.encoding", str(exc)) from None
    header = text.split("\n", 1)[0].rstrip("\r")
    if not header:
        raise FileFormatError(file_name, "file.parse", "empty file: no header row")
    names = header.split(feed.delimiter)
    try:
        return pacsv.read_csv(
            io.BytesIO(text.encode("utf-8")),
            parse_options=pacsv.ParseOptions(delimiter=feed.delimiter),
            # Arrow's default null words ("NA", "null", "N/A", ...) would turn a ticker "NA"
            # into a gap: only the feed's declared words are missing values.
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=True,
                null_values=list(feed.null_values),
            ),
        )
    except pa.ArrowInvalid as exc:
        raise FileFormatError(file_name, "file.parse", str(exc)) from None


_CON: duckdb.DuckDBPyConnection | None = None


def _cursor() -> duckdb.DuckDBPyConnection:
    global _CON
    if _CON is None:
        _CON = duckdb.connect()
    return _CON.cursor()


def _convert(col: pa.ChunkedArray, target: pa.DataType, date_format: str) -> pa.ChunkedArray | None:
    """``col`` as ``target`` if every non-null value converts, else None."""
    if col.type == target:
        return col
    try:
        if pa.types.is_date32(target) and pa.types.is_string(col.type):
            ts = pc.strptime(col, format=date_format, unit="s", error_is_null=False)
            return pc.cast(ts, pa.date32())
        if pa.types.is_boolean(target) and pa.types.is_string(col.type):
            lowered = pc.utf8_lower(col)
            ok = pc.is_in(lowered, pa.array(["true", "false", "1", "0"]))
            if not pc.all(pc.or_(ok, pc.is_null(lowered))).as_py():
                return None
            return pc.is_in(lowered, pa.array(["true", "1"])).cast(pa.bool_())
        return pc.cast(col, target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None


def _select(con: duckdb.DuckDBPyConnection, selects: list[str]) -> pa.Table:
    """The mapped columns of ``src`` plus each row's line number in the file."""
    if not selects:
        return pa.table({})
    query = "SELECT " + ", ".join([*selects, f"row_number() OVER () + 1 AS {SOURCE_LINE}"])
    return con.sql(query + " FROM src").to_arrow_table()


def map_columns(feed: FeedSpec, file_name: str, source: pa.Table) -> ParsedBatch:
    """Map vendor columns onto the lake table's columns and types, recording issues."""
    spec = get_table(feed.table)
    types = {f.name: f.type for f in spec.input_fields}
    issues: list[MappingIssue] = []
    con = _cursor()
    con.register("src", source)
    present = set(source.column_names)
    selects: dict[str, str] = {}  # lake column -> "<expr> AS <lake column>"
    for lake_col, src in feed.columns.items():
        if isinstance(src, SqlExpr):
            expr = src.sql
            try:
                con.sql(f"SELECT {expr} FROM src LIMIT 0").fetchall()
            except duckdb.Error as exc:
                issues.append(MappingIssue(lake_col, "mapping.expression", f"{expr!r}: {exc}"))
                continue
        elif src not in present:
            issues.append(
                MappingIssue(
                    lake_col, "mapping.missing_source", f"vendor column {src!r} not in file"
                )
            )
            continue
        else:
            expr = quote_ident(src)
        selects[lake_col] = f"{expr} AS {quote_ident(lake_col)}"
    try:
        mapped = _select(con, list(selects.values()))
    except duckdb.Error:
        # An expression that binds can still fail on a value (CAST('oops' AS DOUBLE)):
        # leave that column out with an issue, as for a missing vendor column, so the
        # contract quarantines the file instead of the ingestion crashing on it.
        kept = []
        for lake_col, select in selects.items():
            try:
                con.sql(f"SELECT {select} FROM src").fetchall()
                kept.append(select)
            except duckdb.Error as exc:
                message = str(exc).splitlines()[0]
                issues.append(MappingIssue(lake_col, "mapping.expression", message))
        mapped = _select(con, kept)
    con.close()

    arrays: dict[str, pa.ChunkedArray] = {}
    for name in mapped.column_names:
        col = mapped.column(name)
        if name == SOURCE_LINE:
            arrays[name] = pc.cast(col, pa.int64())
            continue
        converted = _convert(col, types[name], feed.date_format)
        if converted is None:
            issues.append(
                MappingIssue(
                    name, "type.unparseable", f"values are not {types[name]}; kept as text"
                )
            )
            converted = pc.cast(col, pa.string())
        arrays[name] = converted
    # Unmapped vendor columns are reported so a rename upstream is visible.
    mapped_sources = {s for s in feed.columns.values() if isinstance(s, str)}
    for extra in sorted(present - mapped_sources - set(feed.ignore_columns)):
        if not any(isinstance(s, SqlExpr) and extra in s.sql for s in feed.columns.values()):
            issues.append(
                MappingIssue(
                    extra, "mapping.unexpected_column", f"vendor column {extra!r} is not mapped"
                )
            )
    n = source.num_rows
    arrays[SOURCE_FILE] = pa.chunked_array([pa.repeat(pa.scalar(file_name), n)])
    return ParsedBatch(feed.name, file_name, pa.table(arrays), issues)


def parse_file(feed: FeedSpec, file_name: str, data: bytes) -> ParsedBatch:
    """Read and map one vendor file; raises :class:`FileFormatError` if unreadable."""
    return map_columns(feed, file_name, decode(feed, file_name, data))
