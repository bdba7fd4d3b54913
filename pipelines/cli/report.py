"""``alphafactory report --date D``: write the PM report of a session."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()


def report(
    date: Annotated[str, typer.Option("--date", help="Session, YYYY-MM-DD")],
    config: Annotated[
        Path | None, typer.Option(help="Daily config YAML (default: ALPHAFACTORY_DAILY_CONFIG)")
    ] = None,
    out: Annotated[
        str | None,
        typer.Option(help="Where to write it (path or s3:// URI; default: under the lake root)"),
    ] = None,
) -> None:
    """Write the self-contained HTML PM report for one session and print where it is."""
    from pipelines.daily.config import DailyConfig
    from pipelines.daily.stages import report_subject
    from pipelines.daily.tasks import load_config
    from pipelines.lake import Lake
    from pipelines.report import write_pm_report

    try:
        day = dt.date.fromisoformat(date)
    except ValueError:
        raise typer.BadParameter(f"{date!r} is not a date (YYYY-MM-DD)") from None
    cfg = DailyConfig.load(config) if config else load_config()
    console.print(write_pm_report(Lake.from_settings(), day, report_subject(cfg), out))
