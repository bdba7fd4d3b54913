"""``alphafactory airflow …``: the embedded Airflow's environment, DB and one-run tests.

Mount with ``app.add_typer(airflow_app, name="airflow")``. Airflow itself is only imported
in the subprocesses these commands start, so ``alphafactory --help`` stays fast.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipelines.config import get_settings
from pipelines.errors import AlphaFactoryError
from pipelines.orchestration.airflow_env import (
    airflow_environment,
    create_pools,
    ensure_airflow_db,
    run_dag_test,
)
from pipelines.timeline import trading_calendar

airflow_app = typer.Typer(
    help="Embedded Airflow: environment, metadata DB, test one DAG run.",
    no_args_is_help=True,
)
console = Console()


def _parse_when(value: str) -> dt.date | dt.datetime:
    try:
        if "T" in value or " " in value:
            instant = dt.datetime.fromisoformat(value)
            if instant.tzinfo is None:
                raise ValueError("no time zone")
            return instant
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: expected a session date YYYY-MM-DD or an aware ISO datetime"
        ) from None
    return trading_calendar().check(day)  # outside the calendar: one line, exit 1


@airflow_app.command("env")
def env() -> None:
    """Print the embedded Airflow's environment, to ``source``: ``export`` lines without
    secrets; the vendor connections only as masked comments (the CLI takes them from
    settings). ``alphafactory airflow env > af.sh && source af.sh``."""
    from pipelines.ingest.connections import simulator_host_key

    for line in airflow_environment().source_lines():
        typer.echo(line)
    # The simulator's host key (public) from the demo's state, so that `ingest day` in the
    # sourcing shell can verify `alphafactory vendor serve` (same state dir by default).
    host_key = None if get_settings().vendor_host_key else simulator_host_key(vendor_state_dir())
    if host_key:
        typer.echo(f"export ALPHAFACTORY_VENDOR_HOST_KEY='{host_key}'")


@airflow_app.command("init")
def init() -> None:
    """Create the Airflow home and migrate its metadata DB (no-op when current)."""
    environment = airflow_environment()
    migrated = ensure_airflow_db(environment)
    state = "migrated" if migrated else "already current"
    console.print(f"Airflow DB {state}: {environment.db_path}")


#: The project's DAG files.
DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"


class UnknownDagError(AlphaFactoryError):
    """A DAG id the project does not define."""


def project_dag_ids() -> list[str]:
    """The ``dag_id``s declared in ``dags/`` (read from the files: importing them would
    cost Airflow's start-up for a typo)."""
    import re

    found = set()
    for path in DAGS_DIR.glob("*.py"):
        found.update(re.findall(r'dag_id\s*=\s*"([^"]+)"', path.read_text()))
    return sorted(found)


@airflow_app.command("dags-test")
def dags_test(
    dag_id: Annotated[str, typer.Argument(help="DAG id, e.g. lake_maintenance")],
    date: Annotated[
        str, typer.Argument(help="session date YYYY-MM-DD, or an aware ISO logical date")
    ],
    conf: Annotated[str | None, typer.Option(help="run conf as a JSON object")] = None,
    show_log: Annotated[bool, typer.Option(help="print Airflow's output")] = False,
    backdate_reason: Annotated[
        str | None,
        typer.Option(
            help="vendor_ingest: load the session at the vendor's publish time, not at "
            "receipt (a past session's history), and why — recorded in ingest_runs"
        ),
    ] = None,
) -> None:
    """Run one DAG run through Airflow (``dag.test()``); exit 1 unless it succeeds."""
    known = project_dag_ids()
    if dag_id not in known:
        raise UnknownDagError(f"no DAG {dag_id!r} in {DAGS_DIR}; the DAGs are {', '.join(known)}")
    run_conf = None
    if conf is not None:
        try:
            run_conf = json.loads(conf)
        except ValueError as exc:
            raise typer.BadParameter(f"--conf is not JSON: {exc}") from None
        if not isinstance(run_conf, dict):
            raise typer.BadParameter("--conf must be a JSON object")
    if backdate_reason:
        run_conf = {**(run_conf or {}), "backdate_reason": backdate_reason}
    result = run_dag_test(dag_id, _parse_when(date), run_conf)
    if show_log:
        typer.echo(result.output)
    colour = "green" if result.ok else "red"
    console.print(f"[{colour}]{dag_id}: {result.state}[/{colour}] in {result.seconds:.1f}s")
    console.print(f"run_id={result.run_id} logical_date={result.logical_date}")
    if result.data_interval:
        console.print(f"data_interval=({result.data_interval[0]}, {result.data_interval[1]}]")
    for task, state in sorted(result.task_states.items()):
        console.print(f"  {task}: {state}")
    if not result.ok:
        raise typer.Exit(1)


@airflow_app.command("backfill")
def backfill(
    dag_id: Annotated[str, typer.Argument(help="DAG id, e.g. vendor_ingest")],
    start: Annotated[str, typer.Option(help="first session date YYYY-MM-DD (inclusive)")],
    end: Annotated[str, typer.Option(help="last session date YYYY-MM-DD (inclusive)")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="only list the runs Airflow would create")
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(
            help="unpause the DAG and start the scheduler, DAG processor and API server until "
            "every run finished (without it, a running scheduler — alphafactory airflow ui — "
            "executes them while the DAG is unpaused)"
        ),
    ] = False,
    reprocess: Annotated[
        str | None,
        typer.Option(help="sessions that already have a run: none (default), failed, completed"),
    ] = None,
    max_active_runs: Annotated[
        int,
        typer.Option(
            min=1,
            help="runs at a time; 1 keeps sessions in order (a session's prices are checked "
            "against the security master the sessions before it loaded)",
        ),
    ] = 1,
    timeout: Annotated[float, typer.Option(help="--wait: seconds before giving up")] = 3600.0,
    port: Annotated[int, typer.Option(help="--wait: API server port")] = 8080,
    backdate_reason: Annotated[
        str | None,
        typer.Option(
            help="vendor_ingest: load each session at the vendor's publish time instead of "
            "now (history as published), and why — recorded in ingest_runs; without it the "
            "rows are known from their receipt"
        ),
    ] = None,
) -> None:
    """Airflow's own backfill (``airflow backfill create``) of DAG over the trading sessions
    START..END of its timetable: one run per session, none on weekends or holidays."""
    from pipelines.orchestration.backfill import create_backfill, unpause, wait_for_runs

    first, last = _session_date(start, "--start"), _session_date(end, "--end")
    environment = airflow_environment(vendor_state_dir=vendor_state_dir())
    plan = create_backfill(
        environment,
        dag_id,
        first,
        last,
        dry_run=dry_run,
        reprocess=reprocess,
        max_active_runs=max_active_runs,
        conf={"backdate_reason": backdate_reason} if backdate_reason else None,
    )
    verb = "would create" if dry_run else "created"
    console.print(
        f"{dag_id}: backfill {first}..{last} {verb} {len(plan.runs)} runs "
        f"(Airflow window {plan.window[0].isoformat()} .. {plan.window[1].isoformat()})",
        highlight=False,
    )
    for run in plan.runs:
        console.print(
            f"  {run.session}  logical_date={run.logical_date.isoformat()}",
            highlight=False,
        )
    if dry_run or not plan.runs:
        return
    if not wait:
        console.print(
            f"queued: a running scheduler executes them while {dag_id} is unpaused "
            "(alphafactory airflow ui)"
        )
        return
    from pipelines.orchestration.ui import AirflowServices

    create_pools(environment)
    unpause(environment, dag_id)
    console.print(f"unpaused {dag_id}: its schedule runs again too")
    services = AirflowServices(
        environment, port=port, services=("api-server", "scheduler", "dag-processor")
    )

    def alive() -> None:
        if dead := services.exited():
            name, code = next(iter(dead.items()))
            console.print(f"[red]airflow {name} exited with code {code}[/red]")
            raise typer.Exit(1)

    def progress(states: dict[dt.date, str]) -> None:
        console.print("  " + ", ".join(f"{d}: {s}" for d, s in sorted(states.items())))

    started = time.perf_counter()
    with services:
        services.wait_healthy(300.0)
        states = wait_for_runs(environment, plan, timeout=timeout, alive=alive, progress=progress)
    ok = all(s == "success" for s in states.values())
    colour = "green" if ok else "red"
    console.print(
        f"[{colour}]{dag_id}: {sum(s == 'success' for s in states.values())}/{len(states)} "
        f"runs succeeded[/{colour}] in {time.perf_counter() - started:.1f}s"
    )
    if not ok:
        raise typer.Exit(1)


def _session_date(value: str, option: str) -> dt.date:
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{option} {value!r}: expected YYYY-MM-DD") from None
    return trading_calendar().check(day)  # outside the calendar: one line, exit 1


def vendor_state_dir() -> Path:
    """Where the demo keeps the vendor simulator's state (its host key: pinned in the
    ``sftp_vendor`` connection the UI's scheduler gives the tasks)."""
    settings = get_settings()
    return (Path("./var") if settings.is_s3 else settings.local_root().parent) / "vendor"


@airflow_app.command("ui")
def ui(
    port: Annotated[int, typer.Option(help="API server (UI) port")] = 8080,
    host: Annotated[str, typer.Option(help="API server bind address")] = "127.0.0.1",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the API")] = 300.0,
) -> None:
    """Start the API server (the UI), scheduler, DAG processor and triggerer on the embedded
    Airflow home and the project's DAGs; print the URL and the login; Ctrl-C stops them."""
    from pipelines.orchestration.ui import ADMIN_USER, AirflowServices

    environment = airflow_environment(vendor_state_dir=vendor_state_dir())
    create_pools(environment)  # the DAGs' pools (solver, broker): scheduled runs need them
    services = AirflowServices(environment, host=host, port=port)
    console.print(
        f"Airflow home {environment.home}, DAGs {environment.values['AIRFLOW__CORE__DAGS_FOLDER']}"
    )
    console.print(f"starting {', '.join(services.services)} (logs in {services.log_dir})")

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM as Ctrl-C: the services are stopped either way

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with services:
            services.wait_healthy(timeout)
            console.print(f"[bold green]Airflow UI:[/bold green] {services.url}", highlight=False)
            console.print(
                f"login: {ADMIN_USER}, password in {services.passwords_file}",
                soft_wrap=True,
                highlight=False,
            )
            console.print("Ctrl-C stops the four services")
            while not (dead := services.exited()):
                time.sleep(1.0)
            name, code = next(iter(dead.items()))
            console.print(f"[red]airflow {name} exited with code {code}[/red]; stopped the others")
            raise typer.Exit(1)
    except KeyboardInterrupt:
        console.print("stopped")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
