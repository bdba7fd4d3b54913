"""``alphafactory audit leaks --start D1 --end D2 [--json] [--no-record]``: the leak audit.

Re-runs the research stages of each session of the range as known at its decision cutoff
(nothing written to the lake but the verdict) and compares them with the lake and with
hindsight (:mod:`pipelines.audit.leaks`). Prints one line per stage table and comparison,
then the verdict; exits 0 when clean, :data:`LEAK_EXIT_CODE` when a leak is found.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from pipelines.cli.dates import parse_session_range
from pipelines.lake import Lake

#: Exit code of an audit that found a leak (1 is a refused command).
LEAK_EXIT_CODE = 2

audit_app = typer.Typer(
    help="Audits of the lake: leaks (research outputs recomputed as known at each session).",
    no_args_is_help=True,
)


@audit_app.command("leaks")
def leaks(
    start: Annotated[str, typer.Option("--start", help="First session, YYYY-MM-DD")],
    end: Annotated[str, typer.Option("--end", help="Last session, YYYY-MM-DD")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
    stages: Annotated[
        str, typer.Option("--stages", help="Comma-separated: universe,features,labels,scores")
    ] = "universe,features,labels,scores",
    record_it: Annotated[
        bool,
        typer.Option("--record/--no-record", help="Append the verdict to the lake's leak_audits"),
    ] = True,
) -> None:
    """Recompute each research stage as known at each session; report what differs and why."""
    from pipelines.audit.leaks import audit_leaks, record

    first, last = parse_session_range(start, end)
    lake = Lake.from_settings()
    chosen = [s.strip() for s in stages.split(",") if s.strip()]
    report = audit_leaks(lake, first, last, stages=chosen)
    if record_it:
        record(lake, report)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        for line in report.lines():
            typer.echo(line)
    if report.leaks:
        raise typer.Exit(LEAK_EXIT_CODE)
