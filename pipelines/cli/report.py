"""``alphafactory report --date D``: write the PM report of a session."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipelines.cli.dates import parse_session
from pipelines.errors import AlphaFactoryError
from pipelines.timeline import LATEST

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

    day = parse_session(date)
    cfg = DailyConfig.load(config) if config else load_config()
    lake = Lake.from_settings()
    if not lake.as_of("prices", known_at=LATEST, valid_at=day, columns=["security_id"]).num_rows:
        raise NothingToReportError(
            f"the lake at {lake.location.root} holds no prices for {day}: nothing to report "
            "(ingest the session and run the daily loop first)"
        )
    console.print(write_pm_report(lake, day, report_subject(cfg), out))


class NothingToReportError(AlphaFactoryError):
    """The session has no data in the lake (before its history, or not ingested yet)."""
