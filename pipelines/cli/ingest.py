"""``alphafactory ingest …`` and ``alphafactory quarantine …``: vendor ingestion by hand.

Mounted as ``app.add_typer(ingest_app, name="ingest")`` and
``app.add_typer(quarantine_app, name="quarantine")``. The commands call exactly what the
``vendor_ingest`` DAG's tasks call (:mod:`pipelines.ingest.runtime`), through the Airflow
connections ``sftp_vendor`` and ``http_vendor`` (from the environment, else the embedded
simulator's defaults from settings). The lake and Great Expectations are imported inside
the commands so ``alphafactory --help`` stays fast.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
from collections import Counter
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pipelines.cli.output import literal, print_records
from pipelines.ingest.knowledge import Backdate
from pipelines.timeline import decision_cutoff, sessions, trading_calendar

if TYPE_CHECKING:
    from pipelines.ingest.flow import FileOutcome

ingest_app = typer.Typer(
    help="Vendor ingestion: one session, or a backfill, as the vendor_ingest DAG runs it.",
    no_args_is_help=True,
)
quarantine_app = typer.Typer(
    help="Vendor batches held back by a blocking contract rule: list, inspect, release.",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)

FeedsOpt = Annotated[
    list[str] | None,
    typer.Option("--feed", help="Feed name (repeatable); default: every declared feed"),
]


def _feed_names(feed: list[str] | None) -> list[str] | None:
    """The chosen feed names, checked against the declarations."""
    from pipelines.ingest.feed_spec import load_feeds

    if not feed:
        return None
    declared = load_feeds()
    unknown = [f for f in feed if f not in declared]
    if unknown:
        raise typer.BadParameter(
            f"unknown feed(s) {', '.join(unknown)}; declared: {', '.join(sorted(declared))}",
            param_hint="--feed",
        )
    return list(dict.fromkeys(feed))


def _check_vendor(names: list[str] | None) -> None:
    """Fail fast, in one line, when a chosen feed's connection does not answer (the
    transfers' own retries would take minutes): :func:`pipelines.ingest.sources.check_reachable`."""
    from pipelines.ingest.connections import ensure_vendor_connections
    from pipelines.ingest.feed_spec import load_feeds
    from pipelines.ingest.runtime import ordered_feeds
    from pipelines.ingest.sources import check_reachable

    ensure_vendor_connections()
    check_reachable([spec.connection_id for spec in ordered_feeds(load_feeds(), names)])


def _outcome_row(o: FileOutcome) -> list[str]:
    return [
        o.feed,
        o.logical_date.isoformat(),
        o.file_name,
        o.status,
        str(o.rows),
        o.quarantine_id or "",
        o.message,
    ]


def _outcomes_table(rows: list[list[str]]) -> Table:
    table = Table(header_style="bold")
    for name in ("feed", "day", "file", "status", "rows", "quarantine"):
        table.add_column(name, no_wrap=True)  # names get copy-pasted: never folded
    table.add_column("message", overflow="fold")
    for row in rows:
        style = {"quarantined": "red", "not published": "red", "error": "red"}.get(row[3])
        table.add_row(*(literal(c) for c in row), style=style)
    return table


BackdateOpt = Annotated[
    bool,
    typer.Option(
        "--backdate",
        help="know the rows from the vendor's publish time, not from now (needs --reason)",
    ),
]
ReasonOpt = Annotated[
    str | None, typer.Option("--reason", help="why the load is backdated (audited)")
]


def _backdate(backdate: bool, reason: str | None) -> Backdate | None:
    """The audited backdate the options ask for, or None (receipt time)."""
    if not backdate:
        if reason:
            raise typer.BadParameter("--reason applies only with --backdate", param_hint="--reason")
        return None
    if not reason or not reason.strip():
        raise typer.BadParameter(
            "--backdate loads rows into the past: say why with --reason '…' (it is recorded)",
            param_hint="--reason",
        )
    return Backdate(reason)


def _say_knowledge_time(stamp: Backdate | None, last: dt.date) -> None:
    """One line on when the loaded rows become known, when that is not obvious."""
    if stamp is not None:
        console.print(f"[yellow]{stamp.label}[/yellow]: rows known from the vendor's publish time")
    elif decision_cutoff(last) < dt.datetime.now(dt.UTC):
        console.print(
            f"[dim]rows are known from now (our receipt): decisions as of {last} and earlier "
            "will not see them; to load history as published pass --backdate --reason '…'[/dim]"
        )


@ingest_app.command("day")
def day_cmd(
    date: Annotated[
        dt.datetime, typer.Option("--date", formats=["%Y-%m-%d"], help="Trading session")
    ],
    feed: FeedsOpt = None,
    backdate: BackdateOpt = False,
    reason: ReasonOpt = None,
) -> None:
    """Ingest one session: fetch, verify, land raw, validate, load silver.

    Rows are known from now (our receipt). To load a past session as the vendor published
    it, pass --backdate --reason '…' (recorded in ingest_runs with your name).
    Exits 1 when a feed is not published yet (or missing) or a batch is quarantined.
    """
    from pipelines.ingest.feed_spec import load_feeds
    from pipelines.ingest.flow import FeedNotPublished
    from pipelines.ingest.runtime import ingest_day, live_sources, ordered_feeds
    from pipelines.lake import Lake

    session = date.date()
    names = _feed_names(feed)
    trading_calendar().require_session(session)  # a weekend: one line naming the nearest
    stamp = _backdate(backdate, reason)
    _check_vendor(names)
    _say_knowledge_time(stamp, session)
    lake = Lake.from_settings()
    rows: list[list[str]] = []
    docs: list[str] = []
    failed = False
    for spec in ordered_feeds(load_feeds(), names):
        day = session.isoformat()
        try:
            # each feed through its own connection
            outcomes = ingest_day(
                lake,
                session,
                spec.name,
                sources=live_sources(spec),
                raise_on_quarantine=False,
                backdate=stamp,
            )
        except FeedNotPublished as exc:
            rows.append([spec.name, day, "", "not published", "0", "", str(exc)])
            failed = True
            continue
        except Exception as exc:  # a vendor that cannot be reached: say which feed and why
            rows.append([spec.name, day, "", "error", "0", "", f"{type(exc).__name__}: {exc}"])
            failed = True
            continue
        rows += [_outcome_row(o) for o in outcomes]
        docs += [o.data_docs for o in outcomes if o.data_docs]
        failed |= any(o.status == "quarantined" for o in outcomes)
    console.print(_outcomes_table(rows))
    if docs:  # the contract runs' Great Expectations pages, one index for all of them
        from pipelines.contracts.data_docs import data_docs_url

        console.print(f"Data Docs: {literal(data_docs_url())}", soft_wrap=True)
    if failed:
        held = sorted({row[5] for row in rows if row[3] == "quarantined" and row[5]})
        hint = (
            f": see 'alphafactory quarantine show {held[0]}'"
            + (f" (and {len(held) - 1} more)" if len(held) > 1 else "")
            if held
            else ": see the message column"
        )
        err.print(f"[red]ingestion incomplete[/red]{hint}")
        raise typer.Exit(1)


@ingest_app.command("backfill")
def backfill_cmd(
    start: Annotated[dt.datetime, typer.Option("--start", formats=["%Y-%m-%d"], help="First day")],
    end: Annotated[dt.datetime, typer.Option("--end", formats=["%Y-%m-%d"], help="Last day")],
    feed: FeedsOpt = None,
    workers: Annotated[int, typer.Option(min=1, help="Parallel SFTP connections")] = 4,
    backdate: BackdateOpt = False,
    reason: ReasonOpt = None,
) -> None:
    """Backfill every session from --start to --end: fetched in parallel, loaded in chunks.

    Rows are known from now (our receipt): right for catching up after an outage. To load
    history as the vendor published it (a research lake), pass --backdate --reason '…'
    (recorded in ingest_runs with your name). Exits 1 when a batch was quarantined (the
    rest is loaded).
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from pipelines.ingest.runtime import backfill
    from pipelines.lake import Lake

    if end < start:
        raise typer.BadParameter("--end is before --start", param_hint="--end")
    names = _feed_names(feed)
    days = sessions(start.date(), end.date())
    if not days:
        console.print("no trading session in the range: nothing to ingest")
        return
    stamp = _backdate(backdate, reason)
    _check_vendor(names)
    _say_knowledge_time(stamp, days[-1])
    lake = Lake.from_settings()
    with Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        tasks: dict[str, Any] = {}

        def on_progress(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = progress.add_task(name, total=total)
            progress.update(tasks[name], completed=done, total=total)

        results = backfill(
            lake,
            days,
            feed_names=names,
            workers=workers,
            on_progress=on_progress,
            backdate=stamp,
        )
    summary = Table(header_style="bold", title=f"{len(days)} sessions {days[0]}..{days[-1]}")
    statuses = sorted({o.status for outcomes in results.values() for o in outcomes})
    for name in ("feed", *statuses, "rows"):
        summary.add_column(name, justify="left" if name == "feed" else "right")
    quarantined: list[FileOutcome] = []
    for name, outcomes in results.items():
        counts = Counter(o.status for o in outcomes)
        rows = sum(o.rows for o in outcomes)
        summary.add_row(name, *(str(counts.get(s, 0)) for s in statuses), str(rows))
        quarantined += [o for o in outcomes if o.status == "quarantined"]
    console.print(summary)
    if quarantined:
        console.print(_outcomes_table([_outcome_row(o) for o in quarantined]))
        err.print(f"[red]{len(quarantined)} batch(es) quarantined[/red]")
        raise typer.Exit(1)


# --- quarantine ------------------------------------------------------------------------


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def _rules(rec: dict[str, Any]) -> str:
    return ", ".join(json.loads(rec["rules"] or "[]"))


@quarantine_app.command("list")
def list_cmd(
    open_only: Annotated[bool, typer.Option("--open", help="Only batches still held back")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table")] = False,
) -> None:
    """Quarantine records, newest day first."""
    from pipelines.ingest import quarantine
    from pipelines.lake import Lake

    records = quarantine.list_records(Lake.from_settings(), "open" if open_only else None)
    if as_json:
        console.file.write(json.dumps(records, default=str, indent=1) + "\n")
        return
    if not records:
        console.print("no open quarantine records" if open_only else "no quarantine records")
        return
    rows = [
        {
            "id": r["quarantine_id"],
            "day": r["valid_date"].isoformat(),
            "feed": r["feed"],
            "file": r["file_name"],
            "status": r["status"],
            "rules": _rules(r),
            # Failing rows of this file out of its rows: the record's reason says the same
            # (a backfill chunk's reason also gives the chunk's count, labelled so).
            "failed rows": _failed(r),
            "actor": r["actor"],
        }
        for r in records
    ]
    print_records(
        console,
        rows,
        optional=("actor", "rules", "feed"),
        style=lambda row: "red" if row["status"] == "open" else None,
    )


def _failed(rec: dict[str, Any]) -> str:
    """``7000 of 9501``; ``-`` for a batch-level failure (no row is singled out)."""
    if rec["failed_rows"] is None:
        return "-"
    return f"{_count(rec['failed_rows'])} of {_count(rec['total_rows'])}"


def _get(qid: str, *, effective: bool = False) -> dict[str, Any]:
    from pipelines.ingest import quarantine
    from pipelines.lake import Lake

    try:
        return quarantine.get_record(Lake.from_settings(), qid, effective=effective)
    except quarantine.QuarantineNotFound as exc:
        err.print(f"[red]{literal(exc)}[/red]")
        raise typer.Exit(2) from None


@quarantine_app.command("show")
def show_cmd(qid: Annotated[str, typer.Argument(help="Quarantine id, e.g. Q1a2b3c4d5e6f")]) -> None:
    """One record: why it was held back, sample failing rows, where the raw file is."""
    rec = _get(qid, effective=True)  # the status `list` shows (superseded, if it is)
    fields = {
        "id": rec["quarantine_id"],
        "status": rec["status"],
        "feed": rec["feed"],
        "table": rec["target_table"],
        "day": rec["valid_date"].isoformat(),
        "file": rec["file_name"],
        "sha256": rec["sha256"] or "",
        "raw file": rec["raw_uri"] or "",
        "rules": _rules(rec),
        "failed rows": _count(rec["failed_rows"]),
        "total rows": _count(rec["total_rows"]),
        "actor": rec["actor"] or "",
    }
    for key, value in fields.items():
        console.print(f"{key:>12}: {literal(value)}", soft_wrap=True, highlight=False)
    console.print("\n[bold]reasons[/bold]")
    for reason in str(rec["message"]).split("; "):
        console.print(f"  - {literal(reason)}", soft_wrap=True, highlight=False)
    sample = json.loads(rec["sample"] or "[]")
    if sample:
        table = Table(title="failing rows (sample)", header_style="bold")
        for name in ("file", "line", "values"):
            table.add_column(name, overflow="fold")
        for s in sample:
            values = s.get("values")
            shown = json.dumps(values, default=str) if not isinstance(values, str) else values
            table.add_row(literal(s.get("file", "")), literal(s.get("line", "")), literal(shown))
        console.print(table)


@quarantine_app.command("release")
def release_cmd(
    qid: Annotated[str, typer.Argument(help="Quarantine id")],
    reason: Annotated[str | None, typer.Option(help="Why it may load (kept in the record)")] = None,
    refetch: Annotated[
        bool, typer.Option(help="Fetch the file again from the vendor (a re-delivery) first")
    ] = False,
    drop_failing_rows: Annotated[
        bool, typer.Option(help="Load all but the rows failing row-level rules")
    ] = False,
    actor: Annotated[
        str | None, typer.Option(help="Who releases (default: the current user)")
    ] = None,
) -> None:
    """Re-validate a quarantined batch and load it if it passes now.

    Exits 1 (the record stays open) if it still fails. A record whose day and file were
    loaded since from a newer delivery is closed as superseded instead (one line, exit 0,
    nothing loaded). Records blocked by this one are released with it, one line each.
    """
    from pipelines.ingest.feed_spec import load_feeds
    from pipelines.ingest.flow import ReleaseRefused, release
    from pipelines.ingest.gate import contract_gate
    from pipelines.ingest.runtime import live_sources
    from pipelines.lake import Lake

    rec = _get(qid)
    feeds = load_feeds()
    feed = feeds.get(str(rec.get("feed")))
    # a re-delivery comes through the feed's own connection
    source = live_sources(feed).files if refetch else None
    try:
        outcome = release(
            Lake.from_settings(),
            qid,
            contract_gate,
            feeds=feeds,
            source=source,
            drop_failing_rows=drop_failing_rows,
            actor=actor or getpass.getuser(),
            reason=reason,
        )
    except ReleaseRefused as exc:
        err.print(f"[red]not released[/red]: {literal(exc)}", soft_wrap=True, highlight=False)
        raise typer.Exit(1) from None
    if outcome.status == "superseded":
        # Compare-and-swap lost: a newer delivery is loaded, so the stale bytes are not.
        console.print(f"not released: {literal(outcome.message)}", soft_wrap=True, highlight=False)
    else:
        console.print(
            f"released {literal(qid)}: {outcome.rows} rows of {literal(outcome.file_name)} "
            f"({literal(outcome.feed)}, {outcome.logical_date}) loaded"
        )
    for dep in outcome.dependents:
        what = f"{literal(dep.feed)} {dep.logical_date} {literal(dep.file_name)}"
        if dep.status == "released":
            line = f"released {literal(dep.quarantine_id)} with it: {dep.rows} rows of {what}"
        elif dep.status == "superseded":
            line = f"closed {literal(dep.quarantine_id)} ({what}): {literal(dep.message)}"
        else:
            line = f"still open {literal(dep.quarantine_id)} ({what}): {literal(dep.message)}"
        console.print(line, soft_wrap=True, highlight=False)
