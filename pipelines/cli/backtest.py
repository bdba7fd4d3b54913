"""``alphafactory backtest --start D1 --end D2 [--config FILE] [--buffer-sessions K] [--resume]``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipelines.cli.dates import parse_session_range

console = Console()


def backtest(
    start: Annotated[str, typer.Option("--start", help="First session, YYYY-MM-DD")],
    end: Annotated[str, typer.Option("--end", help="Last session, YYYY-MM-DD")],
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
    from pipelines.backtest import run_backtest
    from pipelines.backtest.run import DEFAULT_BUFFER_SESSIONS
    from pipelines.daily.config import DailyConfig
    from pipelines.lake import Lake

    first, last = parse_session_range(start, end)
    cfg = DailyConfig.load(config)
    with Progress(
        TextColumn("[bold]backtest[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("", total=None)

        def tick(done: int, total: int, day: dt.date) -> None:
            bar.update(task, completed=done, total=total, description=str(day))

        result = run_backtest(
            Lake.from_settings(),
            first,
            last,
            cfg,
            progress=tick,
            buffer_sessions=DEFAULT_BUFFER_SESSIONS if buffer_sessions is None else buffer_sessions,
            resume=resume,
        )
    console.print(f"run {result.run_id}: {result.start} → {result.end}")
    if result.resumed_after is not None:
        console.print(f"resumed after {result.resumed_after}")
    console.print_json(json.dumps(result.metrics.to_dict()))
    console.print(f"result hash {result.result_hash}")
    console.print(f"report: {result.report_path}")
