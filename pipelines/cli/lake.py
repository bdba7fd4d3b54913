"""``alphafactory lake …``: inspect, query, load and maintain the lake."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any

import duckdb
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from pipelines.cli.dates import parse_date
from pipelines.cli.output import OutputFormat, literal, print_records, render
from pipelines.lake import Lake, LakeError, get_table
from pipelines.lake.catalog import all_tables
from pipelines.lake.maintenance import maintain
from pipelines.lake.query import sql as run_sql

lake_app = typer.Typer(
    help="Inspect, query, load and maintain the bitemporal lake.", no_args_is_help=True
)
console = Console()


def _lake() -> Lake:
    return Lake.from_settings()


def _parse_ts(value: str) -> dt.datetime:
    try:
        ts = dt.datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO 8601 time; e.g. 2024-05-02T22:00:00+00:00"
        ) from None
    if ts.tzinfo is None:
        raise typer.BadParameter(f"{value!r} has no timezone; e.g. 2024-05-02T22:00:00+00:00")
    return ts


def _parse_valid(value: str) -> dt.date | tuple[dt.date, dt.date]:
    if ".." in value:
        start, end = (parse_date(v) for v in value.split("..", 1))
        if end < start:
            raise typer.BadParameter(f"range {value!r} ends before it starts")
        return start, end
    return parse_date(value)


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


@lake_app.command("tables")
def tables(
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table")] = False,
) -> None:
    """List declared tables with their physical state."""
    lake = _lake()
    rows: list[dict[str, Any]] = []
    for name, spec in sorted(all_tables().items()):
        st = lake.status(name)
        rows.append(
            {
                "table": name,
                "valid time": spec.valid_time.value,
                "key": ", ".join(spec.key),
                "version": st.version if st.exists else None,
                "rows": st.rows,
                "files": st.files,
                "last commit": str(st.last_commit)[:19] if st.last_commit else None,
            }
        )
    if as_json:
        console.file.write(json.dumps(rows, default=str, indent=1) + "\n")
        return
    shown = [{k: ("—" if v is None else v) for k, v in r.items()} for r in rows]
    print_records(console, shown, optional=("key", "valid time"))


@lake_app.command("describe")
def describe(table: str) -> None:
    """Schema, keys, time semantics and physical state of TABLE."""
    spec = _spec(table)
    st = _lake().status(table)
    console.print(f"[bold]{spec.name}[/bold] — {spec.description}")
    console.print(
        f"key: {', '.join(spec.key)}   valid time ({spec.valid_time.value}): "
        f"{spec.valid_time_meaning}   partitioned: {spec.partitioned}"
    )
    print_records(
        console,
        [
            {
                "column": fld.name,
                "type": str(fld.type),
                "nullable": str(fld.nullable),
                "doc": (fld.metadata or {}).get(b"doc", b"").decode(),
            }
            for fld in spec.arrow_schema()
        ],
    )
    if st.exists:
        console.print(
            f"version {st.version}, {st.rows} rows in {st.files} files "
            f"({st.size_bytes / 1e6:.1f} MB), last commit {st.last_commit}"
        )
    else:
        console.print("not written yet")


def _spec(table: str):  # type: ignore[no-untyped-def]
    try:
        return get_table(table)
    except LakeError as exc:
        raise typer.BadParameter(str(exc)) from None


@lake_app.command("as-of")
def as_of(
    table: str,
    known_at: Annotated[str, typer.Option(help="knowledge time, ISO 8601 with timezone")],
    valid_at: Annotated[str, typer.Option(help="valid date YYYY-MM-DD or range D1..D2")],
    where: Annotated[
        str | None, typer.Option(help="extra SQL predicate, e.g. \"security_id='S1'\"")
    ] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.table,
) -> None:
    """What we knew at --known-at about --valid-at."""
    _spec(table)
    result = _lake().as_of(table, known_at=_parse_ts(known_at), valid_at=_parse_valid(valid_at))
    if where:
        con = duckdb.connect()
        con.register("t", result)
        try:
            result = con.sql(f"SELECT * FROM t WHERE {where}").to_arrow_table()
        except duckdb.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise typer.BadParameter(f"--where {where!r}: {first}") from None
    render(result, fmt, console)


@lake_app.command("history")
def history(
    table: str,
    key: Annotated[list[str], typer.Option(help="K=V, repeatable")],
    fmt: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.table,
) -> None:
    """Every version of the rows matching --key."""
    _spec(table)
    pairs = {}
    for item in key:
        if "=" not in item:
            raise typer.BadParameter(f"--key expects K=V, got {item!r}")
        k, v = item.split("=", 1)
        if not k or not v:
            raise typer.BadParameter(f"--key expects K=V with both sides, got {item!r}")
        pairs[k] = v
    render(_lake().history(table, pairs), fmt, console)


@lake_app.command("sql")
def sql(
    query: str,
    fmt: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.table,
) -> None:
    """Run a DuckDB query; every lake table is a view of the same name."""
    try:
        result = run_sql(_lake(), query)
    except duckdb.Error as exc:
        console.print(f"[red]query failed:[/red] {exc}")
        raise typer.Exit(1) from None
    render(result, fmt, console)


@lake_app.command("load")
def load(
    table: str,
    file: Path,
    known_at: Annotated[
        str | None,
        typer.Option(help="knowledge time for rows lacking known_at (default: now, receipt)"),
    ] = None,
    backdate: Annotated[
        bool, typer.Option(help="allow a --known-at in the past (audited; needs --reason)")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="why the load is backdated")] = None,
) -> None:
    """Append a CSV or Parquet FILE to TABLE as one idempotent batch, known from now — or,
    with ``--backdate --reason``, from a past ``--known-at`` (recorded in ``ingest_runs``)."""
    spec = _spec(table)
    now = dt.datetime.now(dt.UTC)
    ts = _parse_ts(known_at) if known_at else now
    if ts < now - BACKDATE_TOLERANCE and not (backdate and reason):
        # A past knowledge time rewrites what every as-of read of the past returns.
        raise typer.BadParameter(
            f"--known-at {ts.isoformat()} is in the past: loading there changes what the lake "
            "says was known then; pass --backdate --reason '…' to do it on purpose (audited)"
        )
    data = file.read_bytes()
    with _progress() as progress:
        progress.add_task(f"reading {file.name}", total=None)
        frame = pq.read_table(file) if file.suffix == ".parquet" else pacsv.read_csv(file)
    batch = f"load:{table}:{hashlib.sha256(data).hexdigest()}:{ts.isoformat()}"
    lake = _lake()
    try:
        with _progress() as progress:
            progress.add_task(f"writing {frame.num_rows} rows to {spec.name}", total=None)
            result = lake.write(table, frame, known_at=ts, batch_id=batch)
    except LakeError as exc:
        console.print(f"[red]rejected {literal(file)}:[/red] {literal(exc)}")
        raise typer.Exit(1) from None
    if result.written and ts < now - BACKDATE_TOLERANCE:
        _audit_backdate(lake, table, file, ts, result.rows, reason or "")
    verb = "wrote" if result.written else "already loaded, nothing written:"
    console.print(f"{verb} {result.rows} rows to {table} (version {result.version})")


#: A --known-at this far before now is a backdate (clock skew and typing time are not).
BACKDATE_TOLERANCE = dt.timedelta(minutes=5)


def _audit_backdate(
    lake: Lake, table: str, file: Path, known_at: dt.datetime, rows: int, reason: str
) -> None:
    """One ``ingest_runs`` row saying who loaded what into the past, and why."""
    import pyarrow as pa

    from pipelines.ingest.knowledge import Backdate

    backdate = Backdate(reason)
    row = {
        "feed": f"lake load {table}",
        "file_name": file.name,
        "sha256": hashlib.sha256(file.read_bytes()).hexdigest(),
        "status": "backdated",
        "rows": rows,
        "published_at": None,
        "message": f"backdated to {known_at.isoformat()} by {backdate.by}: {reason}",
        "valid_date": dt.datetime.now(dt.UTC).date(),
        "rows_known_at": known_at,
        "backdate": backdate.label,
    }
    lake.write("ingest_runs", pa.Table.from_pylist([row]), known_at=dt.datetime.now(dt.UTC))


@lake_app.command("maintain")
def maintain_cmd(
    table: Annotated[list[str] | None, typer.Option(help="only these tables")] = None,
    zorder: Annotated[bool, typer.Option(help="z-order tables that declare it")] = True,
) -> None:
    """Compact, z-order, vacuum (keeping the time-travel window) and checkpoint."""
    lake = _lake()
    names = table or sorted(all_tables())
    with Progress(console=console) as progress:
        task = progress.add_task("maintaining", total=len(names))

        def step(name: str) -> None:
            progress.update(task, description=f"maintaining {name}", advance=0)

        reports = []
        for name in names:
            step(name)
            reports.extend(maintain(lake, [name], zorder=zorder))
            progress.advance(task)
    for rep in reports:
        if rep.skipped:
            console.print(f"{rep.table}: skipped ({rep.skipped})")
        else:
            console.print(
                f"{rep.table}: v{rep.version_before} → v{rep.version_after}, "
                f"vacuumed {rep.vacuumed_files} files, checkpointed"
            )


@lake_app.command("init")
def init() -> None:
    """Create every declared table (idempotent)."""
    created = _lake().init()
    console.print(f"created {len(created)} tables" + (f": {', '.join(created)}" if created else ""))
