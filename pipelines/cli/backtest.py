"""``alphafactory backtest --start D1 --end D2 [--config FILE] [--buffer-sessions K] [--resume]
[--retrain monthly]``
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

from pipelines.cli.dates import parse_date_range
from pipelines.errors import AlphaFactoryError
from pipelines.lake import Lake
from pipelines.timeline import LATEST, OutsideCalendarError, trading_calendar

console = Console()

backtest_app = typer.Typer(
    help="Backtest the daily loop over the lake's history; `sweep` runs a parameter grid.",
    invoke_without_command=True,
)


@backtest_app.callback()
def backtest(
    ctx: typer.Context,
    start: Annotated[
        str | None,
        typer.Option("--start", help="First date, YYYY-MM-DD (from the first session on or after)"),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--end", help="Last date, YYYY-MM-DD (through the last session on or before)"),
    ] = None,
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
    retrain: Annotated[
        str | None,
        typer.Option(
            "--retrain",
            help="Retrain the research model inside the run on the walk-forward schedule: "
            "monthly (first session of each month) or weekly; none: score with the config's "
            "scorer (default: the config's `retrain`)",
        ),
    ] = None,
    retrain_workers: Annotated[
        int | None,
        typer.Option(
            "--retrain-workers",
            help="Processes that fit the retrains ahead of the sessions (0: in the run's "
            "process; default: ALPHAFACTORY_BACKTEST_RETRAIN_WORKERS, else 1 on 2+ cores)",
        ),
    ] = None,
) -> None:
    """Run the daily loop's stages session by session over the lake's history (paper broker)."""
    if ctx.invoked_subcommand is not None:
        return
    if start is None or end is None:
        raise typer.BadParameter("--start and --end are required (or: backtest sweep --grid FILE)")
    from pipelines.backtest import run_backtest
    from pipelines.backtest.run import DEFAULT_BUFFER_SESSIONS
    from pipelines.daily.config import DailyConfig

    first, last, notes = parse_date_range(start, end)
    for note in notes:
        console.print(note, highlight=False)
    cfg = DailyConfig.load(config)
    if retrain is not None:
        if retrain not in ("none", "monthly", "weekly"):
            raise typer.BadParameter("--retrain: none, monthly or weekly")
        cfg = cfg.model_copy(update={"retrain": retrain})
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
            retrain_workers=retrain_workers,
            # Written below, with the benchmark-relative and signal sections (lake reads).
            write_report=False,
        )
    from pipelines.backtest.report import write_analysed_report

    report_path, _ = write_analysed_report(
        lake, result.run_id, cfg, result.daily, result.metrics, result.retrains
    )
    console.print(f"run {result.run_id}: {result.start} → {result.end}")
    if result.resumed_after is not None:
        console.print(f"resumed after {result.resumed_after}")
    console.print_json(json.dumps(result.metrics.to_dict()))
    for r in result.retrains:
        model = r.model_id or f"none ({r.error})"
        where = "worker" if r.in_worker else "this process"
        console.print(
            f"retrain {r.day}: model {model}, {r.sessions} sessions "
            f"(fit {r.fit_seconds:.1f} s in {where}, waited {r.waited_seconds:.1f} s)",
            highlight=False,
        )
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
    try:
        window_start = cal.offset(first, -lookback)
    except OutsideCalendarError:  # the window reaches past the calendar's first session
        window_start = cal.start
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
    scheduler: Annotated[
        bool,
        typer.Option(
            "--scheduler",
            help="run on the embedded scheduler and LocalExecutor (variants in parallel, "
            "the run in the Airflow UI) instead of in one process (dag.test)",
        ),
    ] = False,
    port: Annotated[int, typer.Option(help="--scheduler: API server port")] = 8080,
    timeout: Annotated[float, typer.Option(help="--scheduler: seconds before giving up")] = 86400.0,
) -> None:
    """Backtest every variant of GRID through Airflow's ``backtest_sweep`` DAG (one mapped
    task per variant; embedded: ``dag.test()``, or the scheduler and LocalExecutor with
    ``--scheduler``), then print where the comparison report is."""
    from pipelines.backtest.sweep import DAG_ID, load_grid, report_uri
    from pipelines.orchestration.airflow_env import run_dag_test

    plan = load_grid(grid)
    lake = Lake.from_settings()
    first, _, _ = parse_date_range(plan.start.isoformat(), plan.end.isoformat())
    cfg_lookback = int(plan.base.get("lookback_sessions", MIN_HISTORY_SESSIONS))
    _check_history(lake, first, min(cfg_lookback, MIN_HISTORY_SESSIONS))
    console.print(
        f"sweep {plan.sweep_id}: {len(plan.variants)} variants, {plan.start} → {plan.end}",
        highlight=False,
    )
    for v in plan.variants:
        console.print(f"  {v.variant_id}  {v.label()}", highlight=False)
    if scheduler:
        started = time.perf_counter()
        state, task_states = _run_on_scheduler(DAG_ID, plan.to_conf(), port, timeout)
        seconds = time.perf_counter() - started
    else:
        # A manual run "now": each sweep is its own DAG run (a session date would collide).
        when = dt.datetime.now(dt.UTC).replace(microsecond=0)
        result = run_dag_test(DAG_ID, when, plan.to_conf(), timeout=timeout)
        if show_log:
            typer.echo(result.output)
        state, task_states, seconds = result.state, result.task_states, result.seconds
    ok = state == "success"
    colour = "green" if ok else "red"
    console.print(f"[{colour}]{DAG_ID}: {state}[/{colour}] in {seconds:.1f}s")
    failed = sorted(t for t, s in task_states.items() if s != "success")
    if not ok:
        console.print(f"tasks not successful: {', '.join(failed) or '(none recorded)'}")
        console.print("rerun to retry: finished variants are reused")
        raise typer.Exit(1)
    console.print(f"report: {report_uri(lake, plan)}", highlight=False)


def _run_on_scheduler(
    dag_id: str, conf: dict[str, object], port: int, timeout: float
) -> tuple[str, dict[str, str]]:
    """Trigger one run of ``dag_id`` with ``conf`` on the embedded Airflow's scheduler and
    LocalExecutor (API server, scheduler and DAG processor started for it, stopped after);
    return its final state and its task instances' states."""
    import secrets

    from pipelines.cli.airflow import vendor_state_dir
    from pipelines.orchestration.airflow_env import (
        airflow_cli,
        airflow_environment,
        create_pools,
    )
    from pipelines.orchestration.backfill import unpause
    from pipelines.orchestration.ui import AirflowServices

    environment = airflow_environment(vendor_state_dir=vendor_state_dir())
    create_pools(environment)
    # The scheduler runs the DAG as serialized in the DB: write it before triggering.
    airflow_cli(environment, "dags", "reserialize", timeout=600)
    unpause(environment, dag_id)
    run_id = f"sweep__{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}_{secrets.token_hex(3)}"
    airflow_cli(
        environment, "dags", "trigger", dag_id, "--run-id", run_id, "--conf", json.dumps(conf)
    )
    console.print(f"triggered {dag_id} run {run_id}", highlight=False)
    services = AirflowServices(
        environment, port=port, services=("api-server", "scheduler", "dag-processor")
    )
    db = environment.values["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    deadline = time.monotonic() + timeout
    with services:
        services.wait_healthy(300.0)
        while True:
            state, tasks = _run_state(db, dag_id, run_id)
            if state in ("success", "failed"):
                return state, tasks
            if dead := services.exited():
                name, code = next(iter(dead.items()))
                raise AirflowRunError(f"airflow {name} exited with code {code}; run {run_id}")
            if time.monotonic() > deadline:
                raise AirflowRunError(f"{dag_id} run {run_id} not finished after {timeout:.0f}s")
            time.sleep(5.0)


class AirflowRunError(AlphaFactoryError):
    """A DAG run on the embedded scheduler could not finish."""


def _run_state(db_url: str, dag_id: str, run_id: str) -> tuple[str, dict[str, str]]:
    """The run's state and ``{task[index]: state}`` from the embedded SQLite DB (read-only:
    an ``airflow`` command per poll would cost seconds of CPU the tasks need)."""
    import contextlib
    import sqlite3

    if not db_url.startswith("sqlite:///"):
        raise AirflowRunError(f"--scheduler runs on the embedded SQLite DB, not {db_url}")
    uri = f"file:{db_url.removeprefix('sqlite:///')}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as conn:
        row = conn.execute(
            "SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", (dag_id, run_id)
        ).fetchone()
        tasks = conn.execute(
            "SELECT task_id, map_index, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
            (dag_id, run_id),
        ).fetchall()
    states = {(t if int(i) < 0 else f"{t}[{i}]"): str(s) for t, i, s in tasks}
    return (str(row[0]) if row else "not created"), states
