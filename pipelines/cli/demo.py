"""``alphafactory demo``: the main job on the embedded default, end to end.

1. start the vendor simulator on loopback (ports from settings);
2. initialise the embedded Airflow (SQLite metadata DB, pools);
3. backfill the vendor's history (default 3 years × 500 securities) — only the sessions
   not yet loaded, so a second run adds nothing;
4. train the model at the session before the latest one (its promotion takes effect from
   the latest session);
5. open the ``main`` portfolio one session back (the daily loop in process), so the
   latest session has fills to reconcile;
6. run ``vendor_ingest``, ``daily_research`` and ``portfolio_rebalance`` for the latest
   session through Airflow (``dag.test``);
7. write the research report, then print where both reports are, the step timings and
   the commands to look further.

The terminal shows only the demo's own progress, one line per step: log records,
warnings and every Airflow run's output go to ``<var>/demo/logs/`` (printed at the end).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from pipelines.ingest.knowledge import Backdate
from pipelines.timeline import LATEST

# soft wrap: a path or command printed by the demo stays on one line, to copy as printed
console = Console(soft_wrap=True)
DEMO_CONFIG = Path(__file__).resolve().parents[1] / "daily" / "configs" / "demo.yaml"
DAG_ORDER = ("vendor_ingest", "daily_research", "portfolio_rebalance")
#: The demo replays the simulated vendor's past as it was published: rows are known from
#: the vendor's publish times, not from now (recorded in ``ingest_runs``).
DEMO_BACKDATE = Backdate(
    "demo: the simulated vendor's history as published", by="alphafactory demo"
)


#: (step title, seconds) of the steps run so far, for the closing summary.
_TIMINGS: list[tuple[str, float]] = []


@contextmanager
def _step(title: str, key: str) -> Iterator[None]:
    """Print ``title``, time the block, record it as ``key`` for the closing summary."""
    from pipelines.cli.quiet import silence_console_handlers

    started = time.perf_counter()
    silence_console_handlers()  # handlers a library installed in the step before
    console.print(f"[bold cyan]▶ {title}[/bold cyan]")
    yield
    silence_console_handlers()
    took = time.perf_counter() - started
    _TIMINGS.append((key, took))
    console.print(f"  [green]done[/green] in {took:.1f} s")


def _verbose() -> bool:
    import click

    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.find_root().params.get("verbose"))


def demo_log_dir(lake_root: Path) -> Path:
    """Where the demo writes its logs: ``<var>/demo/logs`` beside the lake."""
    return lake_root.parent / "demo" / "logs"


def _missing_days(lake: Any, feed: str, days: list[dt.date]) -> list[dt.date]:
    """Sessions for which ``feed`` has no ingestion record yet."""
    import pyarrow.compute as pc

    if lake.table("ingest_runs") is None or not days:
        return days
    seen = lake.as_of(
        "ingest_runs",
        known_at=LATEST,
        valid_at=(days[0], days[-1]),
        columns=["feed", "status"],
        filter=pc.field("feed") == feed,
    )
    have = set(seen.column("valid_date").to_pylist())
    return [d for d in days if d not in have]


def _progress_printer(label: str) -> Callable[[str, int, int], None]:
    last: dict[str, float] = {}

    def show(feed: str, done: int, total: int) -> None:
        from pipelines.cli.quiet import silence_console_handlers

        silence_console_handlers()  # the loaders import Great Expectations and SSH late
        now = time.perf_counter()
        if done >= total or now - last.get(feed, 0.0) > 5.0:
            last[feed] = now
            console.print(f"  {label} {feed}: {done}/{total}")

    return show


def demo(
    warmup_sessions: Annotated[
        int, typer.Option(help="Sessions the portfolio trades before the latest one")
    ] = 1,
    workers: Annotated[int, typer.Option(help="Parallel vendor downloads")] = 4,
) -> None:
    """Run the daily loop on the embedded default and print where the PM report is."""
    from pipelines.cli.quiet import log_to_file
    from pipelines.config import get_settings
    from pipelines.lake import Lake

    t0 = time.perf_counter()
    _TIMINGS.clear()
    settings = get_settings()
    lake = Lake.from_settings()
    lake.init()
    logs = demo_log_dir(settings.local_root() if not settings.is_s3 else Path("./var/lake"))
    if _verbose():  # `alphafactory --verbose demo`: every log line on the terminal
        _run(lake, settings, warmup_sessions, workers, logs, t0)
        return
    with log_to_file(logs / "demo.log"):
        # Airflow's hooks install its console log handler when first imported: import them
        # now, before any progress, so that handler is silenced from the first step on
        from airflow.providers.sftp.hooks.sftp import SFTPHook  # noqa: F401

        _run(lake, settings, warmup_sessions, workers, logs, t0)


def _run(
    lake: Any, settings: Any, warmup_sessions: int, workers: int, logs: Path, t0: float
) -> None:
    """The demo's steps (see the module docstring)."""
    from pipelines.cli.airflow import vendor_state_dir
    from pipelines.daily.config import DailyConfig
    from pipelines.orchestration.airflow_env import airflow_environment, ensure_airflow_db
    from pipelines.report import pm_report_uri
    from pipelines.vendors.config import VendorConfig
    from pipelines.vendors.server import run_vendor

    state_dir = vendor_state_dir()
    vendor_cfg = VendorConfig.from_settings(state_dir=state_dir)
    market = vendor_cfg.market
    console.print(
        f"[bold]Alpha Factory demo[/bold]: {market.universe_size} securities, "
        f"{market.start} → {market.end}, lake {lake.location.root}"
    )
    console.print("[bold cyan]▶ vendor simulator (SFTP + REST on loopback)[/bold cyan]")
    with run_vendor(vendor_cfg) as ep:
        sim = ep.simulator
        published = sim.visible_days(vendor_cfg.clock.now())
        if len(published) < 200:
            raise typer.BadParameter("the simulated vendor has published too little history")
        latest = published[-1]
        history = published[:-1]
        console.print(
            f"  sftp {ep.host}:{ep.sftp_port}, http {ep.base_url}; latest session {latest}"
        )
        env = airflow_environment(
            settings, vendor_host_key=ep.host_public_key, vendor_state_dir=state_dir
        )
        # In-process ingestion uses the same Airflow connections the tasks get.
        for key, value in env.values.items():
            if key.startswith("AIRFLOW_CONN_"):
                os.environ[key] = value
        with _step("Airflow metadata DB (SQLite)", "airflow-db"):
            ensure_airflow_db(env)  # the pools are created by the DAG runs' process
        with _step(f"backfill {len(history)} sessions through SFTP/REST", "backfill"):
            _backfill(lake, history, workers)
        with _step(f"train the model at {history[-1]}", "train"):
            _train(lake, history[-1])
        config = DailyConfig.load(DEMO_CONFIG)
        with _step(
            f"portfolio {config.portfolio_id}: {warmup_sessions} sessions in process", "warm-up"
        ):
            _warm_up(lake, history[-warmup_sessions:], config)
        extra = {
            "ALPHAFACTORY_LAKE_ROOT": str(lake.location.root),
            "ALPHAFACTORY_DAILY_CONFIG": str(DEMO_CONFIG),
        }
        conf = {"session": latest.isoformat(), "backdate_reason": DEMO_BACKDATE.reason}
        console.print(
            f"[bold cyan]▶ Airflow: {' → '.join(DAG_ORDER)} for {latest}[/bold cyan] "
            "[dim](dag.test(), one process)[/dim]"
        )
        failed_run = _run_dags(latest, conf, env, extra, logs)
    if failed_run is not None:
        console.print(failed_run.output[-4000:], markup=False, highlight=False)
        console.print(
            f"[red]{failed_run.dag_id} failed[/red]; the whole output: {logs / 'airflow.log'}"
        )
        raise typer.Exit(code=1)
    report = pm_report_uri(lake, config.portfolio_id, latest)
    with _step("research report", "research-report"):
        research = _research_report(lake)
    total = time.perf_counter() - t0
    steps = ", ".join(f"{key} {took:.0f} s" for key, took in _TIMINGS)
    console.print(
        f"\n[bold green]PM report:[/bold green]       {report}\n"
        f"[bold green]Research report:[/bold green] {research}\n"
        f"[dim]total {total:.0f} s ({steps}); logs and Airflow output: {logs}[/dim]\n"
        "\n[bold]Next:[/bold]"
    )
    for command, why in next_commands(latest):
        console.print(f"  {command}    [dim]# {why}[/dim]", markup=True, highlight=False)


def _run_dags(
    latest: dt.date, conf: dict[str, str], env: Any, extra: dict[str, str], logs: Path
) -> Any:
    """The three DAGs for ``latest`` in one ``dag.test()`` process, a line per run as it
    ends; returns the run that failed (None when all succeeded)."""
    from pipelines.cli.quiet import silence_console_handlers
    from pipelines.orchestration.airflow_env import ChainedRun, DagTestResult, run_dag_chain

    started = time.perf_counter()
    last = [started]

    def show(result: DagTestResult) -> None:
        now = time.perf_counter()
        _TIMINGS.append((result.dag_id, now - last[0]))
        last[0] = now
        failed = {t: s for t, s in result.task_states.items() if s not in ("success", "skipped")}
        mark = "[green]success[/green]" if result.ok else f"[red]{result.state}[/red]"
        console.print(
            f"  {result.dag_id}: {mark}, {len(result.task_states)} tasks, {result.seconds:.0f} s"
        )
        if failed and result.ok:
            console.print(f"  [yellow]not successful: {failed}[/yellow]")

    results = run_dag_chain(
        [ChainedRun(dag_id, latest, conf) for dag_id in DAG_ORDER],
        env=env,
        extra_env=extra,
        log_file=logs / "airflow.log",
        on_result=show,
    )
    silence_console_handlers()
    console.print(f"  [green]done[/green] in {time.perf_counter() - started:.1f} s")
    return next((r for r in results if not r.ok), None)


def next_commands(latest: dt.date) -> list[tuple[str, str]]:
    """The closing hint: commands to run as printed (from the demo's directory), and why."""
    return [
        ("alphafactory airflow ui", "these runs in the Airflow UI (it prints the URL and login)"),
        ("alphafactory status", "freshness, quality, the last runs"),
        ("alphafactory vendor serve", "the vendor simulator; in another terminal, then:"),
        (
            "alphafactory airflow env > af.sh && source af.sh && "
            f"alphafactory ingest day --date {latest}",
            "one session by hand (the simulator's host key pinned)",
        ),
    ]


def _research_report(lake: Any) -> str:
    """Write the research report beside the PM reports; return its path."""
    from pipelines.research.report_lake import write_lake_report

    root = Path(str(lake.location.root))
    return str(write_lake_report(lake, root / "reports" / "research-report.html"))


def _backfill(lake: Any, days: list[dt.date], workers: int) -> None:
    """Load the sessions of ``days`` each feed lacks. Feeds missing the same sessions (a
    fresh lake) go in one backfill call, so the file-drop feeds share their downloads."""
    from pipelines.ingest.backfill import PhaseTimer
    from pipelines.ingest.feed_spec import load_feeds
    from pipelines.ingest.runtime import backfill, ordered_feeds

    todo: dict[str, list[dt.date]] = {}
    for feed in ordered_feeds(load_feeds()):
        missing = _missing_days(lake, feed.name, days)
        if missing:
            todo[feed.name] = missing
        else:
            console.print(f"  {feed.name}: all {len(days)} sessions already loaded")
    batches: list[tuple[list[str], list[dt.date]]] = []
    for name, missing in todo.items():
        if batches and batches[-1][1] == missing:
            batches[-1][0].append(name)
        else:
            batches.append(([name], missing))
    timer = PhaseTimer()
    for names, missing in batches:
        out = backfill(
            lake,
            missing,
            feed_names=names,
            workers=workers,
            timer=timer,
            on_progress=_progress_printer("loading"),
            backdate=DEMO_BACKDATE,
        )
        for name in names:
            outcomes = out.get(name, [])
            bad = [o for o in outcomes if o.status == "quarantined"]
            console.print(f"  {name}: {len(outcomes)} files, {len(bad)} quarantined")
    if timer.seconds:
        phases = ", ".join(f"{k} {v:.0f} s" for k, v in sorted(timer.seconds.items()))
        console.print(f"  [dim]phases: {phases}[/dim]")


def _train(lake: Any, day: dt.date) -> None:
    from pipelines.research.stages import ResearchContext, models_known, retrain
    from pipelines.timeline import decision_cutoff

    if models_known(lake, day):
        console.print("  a model is already registered; keeping it")
        return
    result = retrain(ResearchContext(lake, day))
    console.print(
        f"  model {result.record.model_id[:12]} oos rank IC {result.challenger_metric:.4f}; "
        f"{result.reason} (known {decision_cutoff(day):%Y-%m-%d %H:%M} UTC)"
    )


def _warm_up(lake: Any, days: list[dt.date], config: Any) -> None:
    """The daily loop in process for ``days`` (skipping sessions already booked)."""
    from pipelines.daily.loop import run_day
    from pipelines.daily.stages import paper_broker
    from pipelines.timeline import decision_cutoff

    broker = paper_broker(lake, config)
    done = set()
    if lake.table("daily_book") is not None:
        booked = lake.as_of(
            "daily_book",
            known_at=LATEST,
            valid_at=(days[0], days[-1]),
            columns=["portfolio_id"],
        ).to_pandas()
        done = set(booked.loc[booked["portfolio_id"] == config.portfolio_id, "valid_date"])
    for day in days:
        if day in done:
            console.print(f"  {day}: already booked")
            continue
        # The broker fills a session only once it is known at that day's decision time.
        broker.prices.known_at = decision_cutoff(day)  # type: ignore[attr-defined]
        out = run_day(lake, day, config, broker, write_report=False)
        book = out.outputs["reconcile"]
        console.print(
            f"  {day}: {out.outputs['optimize']['status']}, "
            f"{out.outputs['execute'].get('submitted', 0)} orders, NAV {book['nav']:,.0f}"
        )
