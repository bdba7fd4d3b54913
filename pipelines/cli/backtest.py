"""``alphafactory backtest --start D1 --end D2 [--config FILE] [--buffer-sessions K] [--resume]``
and ``alphafactory backtest sweep --grid FILE`` (a parameter grid through Airflow)."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from pipelines.cli.dates import parse_session_range
from pipelines.errors import AlphaFactoryError
from pipelines.lake import Lake
from pipelines.timeline import LATEST, trading_calendar

console = Console()

backtest_app = typer.Typer(
    help="Backtest the daily loop over the lake's history; `sweep` runs a parameter grid.",
    invoke_without_command=True,
)


@backtest_app.callback()
def backtest(
    ctx: typer.Context,
    start: Annotated[str | None, typer.Option("--start", help="First session, YYYY-MM-DD")] = None,
    end: Annotated[str | None, typer.Option("--end", help="Last session, YYYY-MM-DD")] = None,
    config: Annotated[Path | None, typer.Option(help="Daily config YAML")] = None,
    buffer_sessions: Annotated[
        int | None,
        typer.Option(
            "--buffer-sessions",
            help="Commit the stages' writes to the lake every K sessions and checkpoint "
            "(0 or 1: write through at every stage)",
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the latest interrupted run of this config and range from its "
            "last checkpoint",
        ),
    ] = False,
) -> None:
    """Run the daily loop's stages session by session over the lake's history (paper broker)."""
    if ctx.invoked_subcommand is not None:
        return
    if start is None or end is None:
        raise typer.BadParameter("--start and --end are required (or: backtest sweep --grid FILE)")
    from pipelines.backtest import run_backtest
    from pipelines.backtest.run import DEFAULT_BUFFER_SESSIONS
    from pipelines.daily.config import DailyConfig

    first, last = parse_session_range(start, end)
    cfg = DailyConfig.load(config)
    lake = Lake.from_settings()
    _check_history(lake, first, min(cfg.lookback_sessions, MIN_HISTORY_SESSIONS))
    with Progress(
        TextColumn("[bold]backtest[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("", total=None, rate="")
        started = time.perf_counter()

        def tick(done: int, total: int, day: dt.date) -> None:
            elapsed = time.perf_counter() - started
            rate = f"{done / elapsed:.2f} sessions/s" if done and elapsed > 0 else ""
            bar.update(task, completed=done, total=total, description=str(day), rate=rate)

        result = run_backtest(
            lake,
            first,
            last,
            cfg,
            progress=tick,
            buffer_sessions=DEFAULT_BUFFER_SESSIONS if buffer_sessions is None else buffer_sessions,
            resume=resume,
            # Written below, with the benchmark-relative and signal sections (lake reads).
            write_report=False,
        )
    from pipelines.backtest.report import write_analysed_report

    report_path, _ = write_analysed_report(lake, result.run_id, cfg, result.daily, result.metrics)
    console.print(f"run {result.run_id}: {result.start} → {result.end}")
    if result.resumed_after is not None:
        console.print(f"resumed after {result.resumed_after}")
    console.print_json(json.dumps(result.metrics.to_dict()))
    console.print(f"result hash {result.result_hash}")
    console.print(f"report: {report_path}")


#: Sessions of prices a backtest needs before its first session (a month: the risk model
#: and the scorers have nothing to estimate from otherwise, and the run would stop).
MIN_HISTORY_SESSIONS = 21


class NotEnoughHistoryError(AlphaFactoryError):
    """The lake's prices do not reach far enough before the first session."""


def _check_history(lake: Lake, first: dt.date, lookback: int) -> None:
    """Refuse, in one line naming the earliest possible start, a first session with fewer
    than ``lookback`` sessions of prices before it (the risk model and the scorers read
    that window; the run would stop on its first session)."""
    cal = trading_calendar()
    window_start = cal.offset(first, -lookback) if cal.first <= first else first
    frame = lake.as_of(
        "prices", known_at=LATEST, valid_at=(window_start, first), columns=["valid_date"]
    )
    known = sorted(set(frame.column("valid_date").to_pylist()))
    days = [d for d in known if d < first] or known
    if len([d for d in known if d < first]) >= lookback:
        return
    if not days:
        raise NotEnoughHistoryError(
            f"the lake at {lake.location.root} holds no prices up to {first}: ingest the "
            "history first (alphafactory ingest backfill)"
        )
    earliest = cal.offset(days[0], lookback)
    raise NotEnoughHistoryError(
        f"a backtest from {first} needs {lookback} sessions of prices before it and the "
        f"lake's prices start on {days[0]}: start on or after {earliest}"
    )


@backtest_app.command("sweep")
def sweep(
    grid: Annotated[
        Path, typer.Option("--grid", help="Sweep grid YAML (pipelines/backtest/sweep.py)")
    ],
    show_log: Annotated[bool, typer.Option(help="print Airflow's output")] = False,
) -> None:
    """Backtest every variant of GRID through Airflow's ``backtest_sweep`` DAG (one mapped
    task per variant, embedded: ``dag.test()``), then print where the comparison report is."""
    from pipelines.backtest.sweep import DAG_ID, load_grid, report_uri
    from pipelines.orchestration.airflow_env import run_dag_test

    plan = load_grid(grid)
    lake = Lake.from_settings()
    first, _ = parse_session_range(plan.start.isoformat(), plan.end.isoformat())
    cfg_lookback = int(plan.base.get("lookback_sessions", MIN_HISTORY_SESSIONS))
    _check_history(lake, first, min(cfg_lookback, MIN_HISTORY_SESSIONS))
    console.print(
        f"sweep {plan.sweep_id}: {len(plan.variants)} variants, {plan.start} → {plan.end}",
        highlight=False,
    )
    for v in plan.variants:
        console.print(f"  {v.variant_id}  {v.label()}", highlight=False)
    # A manual run "now": each sweep is its own DAG run (a session date would collide).
    when = dt.datetime.now(dt.UTC).replace(microsecond=0)
    result = run_dag_test(DAG_ID, when, plan.to_conf(), timeout=24 * 3600)
    if show_log:
        typer.echo(result.output)
    colour = "green" if result.ok else "red"
    console.print(f"[{colour}]{DAG_ID}: {result.state}[/{colour}] in {result.seconds:.1f}s")
    failed = sorted(t for t, s in result.task_states.items() if s != "success")
    if not result.ok:
        console.print(f"tasks not successful: {', '.join(failed) or '(none recorded)'}")
        console.print("rerun to retry: finished variants are reused")
        raise typer.Exit(1)
    console.print(f"report: {report_uri(lake, plan)}", highlight=False)
