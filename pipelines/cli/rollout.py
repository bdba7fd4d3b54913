"""``alphafactory rollout status|start|promote|rollback|run [--json]``: the staged rollout
of a model, policy or scorer (paper → canary → full; :mod:`pipelines.rollout`).

Every command that changes a stage appends one ``rollout_events`` row (who, why, when)
and prints one line (or, with ``--json``, the event); a step recorded for a session takes
effect from the next session. ``run`` is the daily step: the candidates' shadow books for
a session, their gates, and the automatic rollbacks and promotions.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
from pathlib import Path
from typing import Annotated, Any

import typer

rollout_app = typer.Typer(
    help="Staged rollout of a model, policy or scorer: paper → canary → full, gated daily.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="JSON on stdout")]
SessionOption = Annotated[
    str | None,
    typer.Option(
        "--session", help="Session the step is taken on, YYYY-MM-DD (default: the latest)"
    ),
]
ActorOption = Annotated[str | None, typer.Option("--actor", help="Who (default: OS user)")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why (recorded in the audit)")]
PortfolioOption = Annotated[
    str | None,
    typer.Option("--portfolio", help="Production portfolio (default: the daily config's)"),
]


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (a container without passwd)
        return "unknown"


def _session(session: str | None) -> dt.date:
    from pipelines.cli.dates import parse_session
    from pipelines.timeline import system_clock, trading_calendar

    if session is not None:
        return parse_session(session)
    today = system_clock().date()
    return trading_calendar().at_or_before(today) or today


def _portfolio(portfolio: str | None) -> str:
    from pipelines.daily.tasks import load_config

    return portfolio or load_config().portfolio_id


def _echo_event(event: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(event, default=str, indent=1))
    else:
        typer.echo(
            f"{event['candidate_id']}: {event['event']} {event['stage_before'] or '–'} → "
            f"{event['stage_after']} on {event.get('valid_date', '')} by {event['actor']}: "
            f"{event['reason']}"
        )


@rollout_app.command("status")
def status(portfolio: PortfolioOption = None, as_json: JsonOption = False) -> None:
    """Every candidate: stage, since when, its last gate values and verdict."""
    from pipelines.lake import Lake
    from pipelines.rollout.session import status as rollout_status

    frame = rollout_status(Lake.from_settings(), portfolio)
    if as_json:
        typer.echo(json.dumps(frame.to_dict(orient="records"), default=str, indent=1))
        return
    if frame.empty:
        typer.echo("no rollout candidates")
        return
    for r in frame.to_dict(orient="records"):
        typer.echo(
            f"{r['candidate_id']} ({r['kind']} {r['ref']}, shadows {r['portfolio_id']}): "
            f"{r['stage']} since {r['since']}; last gates {r['last_session'] or '–'}: "
            f"{r['verdict'] or '–'}; last step {r['last_event']}"
        )


@rollout_app.command("start")
def start(
    candidate: Annotated[str, typer.Argument(help="Candidate id (letters, digits, - and _)")],
    kind: Annotated[str, typer.Option("--kind", help="model | policy | scorer")],
    ref: Annotated[
        str,
        typer.Option("--ref", help="Model id, policy name/YAML, or scorer (name or module:attr)"),
    ],
    config: Annotated[
        Path | None, typer.Option("--config", help="Rollout gates YAML (default: shipped)")
    ] = None,
    portfolio: PortfolioOption = None,
    session: SessionOption = None,
    actor: ActorOption = None,
    reason: ReasonOption = "",
    as_json: JsonOption = False,
) -> None:
    """Start a candidate in paper (its shadow book runs from the next session)."""
    from pipelines.lake import Lake
    from pipelines.rollout.config import RolloutConfig
    from pipelines.rollout.session import start as rollout_start
    from pipelines.timeline import system_clock

    day = _session(session)
    event = rollout_start(
        Lake.from_settings(),
        candidate,
        kind=kind,
        ref=ref,
        portfolio_id=_portfolio(portfolio),
        day=day,
        config=RolloutConfig.load(config),
        actor=_actor(actor),
        reason=reason,
        known_at=system_clock(),
    )
    _echo_event({**event, "valid_date": day}, as_json)


@rollout_app.command("promote")
def promote(
    candidate: Annotated[str, typer.Argument(help="Candidate id")],
    force: Annotated[
        bool, typer.Option("--force", help="Promote although the gates have not passed")
    ] = False,
    session: SessionOption = None,
    actor: ActorOption = None,
    reason: ReasonOption = "",
    as_json: JsonOption = False,
) -> None:
    """Move a candidate to its next stage (paper → canary → full) once its gates passed."""
    from pipelines.daily.tasks import load_config
    from pipelines.lake import Lake
    from pipelines.rollout.session import promote as rollout_promote
    from pipelines.timeline import system_clock

    day = _session(session)
    event = rollout_promote(
        Lake.from_settings(),
        candidate,
        day=day,
        actor=_actor(actor),
        reason=reason,
        force=force,
        known_at=system_clock(),
        production=load_config(),
    )
    _echo_event({**event, "valid_date": day}, as_json)


@rollout_app.command("rollback")
def rollback(
    candidate: Annotated[str, typer.Argument(help="Candidate id")],
    session: SessionOption = None,
    actor: ActorOption = None,
    reason: ReasonOption = "",
    as_json: JsonOption = False,
) -> None:
    """Stop a candidate (from full: production's previous model or policy again)."""
    from pipelines.lake import Lake
    from pipelines.rollout.session import rollback as rollout_rollback
    from pipelines.timeline import system_clock

    day = _session(session)
    event = rollout_rollback(
        Lake.from_settings(),
        candidate,
        day=day,
        actor=_actor(actor),
        reason=reason,
        known_at=system_clock(),
    )
    _echo_event({**event, "valid_date": day}, as_json)


@rollout_app.command("run")
def run(
    session: Annotated[str, typer.Option("--session", help="Session, YYYY-MM-DD")],
    as_json: JsonOption = False,
) -> None:
    """The daily step for a session: every active candidate's shadow books, then its
    gates (automatic rollback on a failing gate, promotion when configured)."""
    from pipelines.cli.dates import parse_session
    from pipelines.rollout.tasks import run_rollout

    summary = run_rollout(parse_session(session).isoformat())
    if as_json:
        typer.echo(json.dumps(summary, indent=1))
        return
    if not summary["gates"]:
        typer.echo(f"{summary['session']}: no active rollout candidate")
    for step in summary["steps"]:
        typer.echo(
            f"{step['candidate_id']}: {step['event']} → {step['stage_after']}: {step['reason']}"
        )
