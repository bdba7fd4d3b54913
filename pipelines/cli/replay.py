"""``alphafactory replay --session D [--through D2] [--portfolio P] [--json]``: recompute a
past session's decision from the lake as known then and diff it against what was stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

#: Exit code when a replayed artefact differs from the stored one.
DIFF_EXIT_CODE = 1


def replay(
    session: Annotated[str, typer.Option("--session", help="Session to replay, YYYY-MM-DD")],
    through: Annotated[
        str | None,
        typer.Option(
            "--through",
            help="Replay every session of the portfolio from --session to this one (YYYY-MM-DD)",
        ),
    ] = None,
    portfolio: Annotated[
        str | None,
        typer.Option("--portfolio", help="Portfolio id (default: the daily config's)"),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help="Daily config YAML for a session that recorded none "
            "(default: ALPHAFACTORY_DAILY_CONFIG)"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout")] = False,
) -> None:
    """Recompute session D's risk model, targets, orders and pre-trade verdicts from the lake
    as known at D's decision time (its book, config, policy and limits as recorded then),
    with the daily loop's own stages, writing nothing; print "bit-identical" per artefact or
    the first difference. Exits 1 when an artefact differs."""
    from pipelines.cli.dates import parse_session
    from pipelines.daily.config import DailyConfig
    from pipelines.daily.tasks import load_config
    from pipelines.lake import Lake
    from pipelines.replay import replay_sessions, sessions_of

    first = parse_session(session)
    cfg = DailyConfig.load(config) if config else load_config()
    pid = portfolio or cfg.portfolio_id
    lake = Lake.from_settings()
    days = [first]
    if through is not None:
        days = sessions_of(lake, pid, first, parse_session(through)) or [first]
    results = replay_sessions(lake, days, pid, config=cfg)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in results], indent=2, default=str))
    else:
        for r in results:
            typer.echo(
                f"{r.portfolio_id} {r.session} (orders for {r.trade_date}): "
                f"book from {r.book_source} ({r.book_check}); settings {r.settings}; "
                f"{len(r.warm_chain)} earlier solve(s) re-run for the warm start"
            )
            if r.skipped:
                typer.echo(f"  skipped session: {r.skipped}")
            for a in r.artefacts:
                typer.echo(f"  {a.artefact:<20} {a.difference or 'bit-identical'}")
    if not all(r.identical for r in results):
        raise typer.Exit(DIFF_EXIT_CODE)
