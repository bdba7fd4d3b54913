"""``alphafactory backtest --start D1 --end D2 [--config FILE]``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipelines.cli.dates import parse_session_date

console = Console()


def backtest(
    start: Annotated[str, typer.Option("--start", help="First session, YYYY-MM-DD")],
    end: Annotated[str, typer.Option("--end", help="Last session, YYYY-MM-DD")],
    config: Annotated[Path | None, typer.Option(help="Daily config YAML")] = None,
) -> None:
    """Run the daily loop's stages session by session over the lake's history (paper broker)."""
    from pipelines.backtest import run_backtest
    from pipelines.daily.config import DailyConfig
    from pipelines.lake import Lake

    first, last = parse_session_date(start), parse_session_date(end)
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

        result = run_backtest(Lake.from_settings(), first, last, cfg, progress=tick)
    console.print(f"run {result.run_id}: {result.start} → {result.end}")
    console.print_json(json.dumps(result.metrics.to_dict()))
    console.print(f"result hash {result.result_hash}")
    console.print(f"report: {result.report_path}")
