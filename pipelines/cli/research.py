"""``alphafactory research …``: run research stages for a session and write the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipelines.cli.dates import parse_date, parse_past_session
from pipelines.timeline import ALL_DATES

research_app = typer.Typer(
    help="Point-in-time universe, features, models, scores and the research report.",
    no_args_is_help=True,
)
console = Console()

SessionArg = Annotated[str, typer.Argument(help="trading session, YYYY-MM-DD")]


@research_app.command("report")
def report(
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write")] = Path(
        "var/reports/research.html"
    ),
    start: Annotated[str | None, typer.Option(help="first score date")] = None,
    end: Annotated[str | None, typer.Option(help="last score date")] = None,
    horizon: Annotated[int, typer.Option(help="main IC horizon (sessions)")] = 5,
) -> None:
    """Write the HTML research report (IC, ICIR, IC decay, quantiles, importances)."""
    from pipelines.lake import Lake
    from pipelines.research.report_lake import write_lake_report

    path = write_lake_report(
        Lake.from_settings(),
        out,
        parse_date(start) if start else ALL_DATES[0],
        parse_date(end) if end else ALL_DATES[1],
        horizon,
    )
    console.print(f"research report written to {path}")


@research_app.command("features")
def features(session: SessionArg, name: Annotated[list[str] | None, typer.Option()] = None) -> None:
    """Compute the universe and features (all, or each --name) for a session."""
    from pipelines.research.stages import ResearchContext, compute_features, compute_universe

    ctx = ResearchContext.from_settings(parse_past_session(session, "session"))
    members = compute_universe(ctx)
    rows = compute_features(ctx.with_features(name or None))
    console.print(f"{ctx.day}: {len(members)} universe members, {len(rows)} feature values")


@research_app.command("retrain")
def retrain(session: SessionArg) -> None:
    """Retrain at a session's close and run champion/challenger."""
    from pipelines.research.stages import ResearchContext
    from pipelines.research.stages import retrain as retrain_at

    result = retrain_at(ResearchContext.from_settings(parse_past_session(session, "session")))
    console.print(
        json.dumps(
            {
                "model_id": result.record.model_id,
                "promoted": result.promoted,
                "reason": result.reason,
                "champion_id": result.champion_id,
            }
        )
    )


@research_app.command("score")
def score(session: SessionArg) -> None:
    """Score a session's universe with the champion model."""
    from pipelines.research.stages import ResearchContext, score_day

    frame = score_day(ResearchContext.from_settings(parse_past_session(session, "session")))
    console.print(f"{session}: {len(frame)} scores from model {frame['model_id'].iloc[0]}")
