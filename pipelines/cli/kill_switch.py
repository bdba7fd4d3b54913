"""``alphafactory kill-switch engage|release|status``: the central kill switch.

The switch is state in the lake (table ``kill_switch``, every change audited with who,
why and when; :mod:`pipelines.risk.kill_switch`), so it holds for every worker whatever
its working directory. ``engage`` also cancels every open order of the configured
portfolio at its broker. Each command prints one line; an error is one line on stderr and
a non-zero exit (the root group turns :class:`AlphaFactoryError` into that).
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer

from pipelines.errors import AlphaFactoryError
from pipelines.execution.broker import BrokerError
from pipelines.lake import Lake
from pipelines.risk import kill_switch

kill_switch_app = typer.Typer(
    help="The central kill switch: engage (blocks every order, cancels open ones), "
    "release, status.",
    no_args_is_help=True,
)

ReasonOption = Annotated[str, typer.Option("--reason", help="Why (recorded in the audit).")]
ActorOption = Annotated[
    str | None, typer.Option("--actor", help="Who (default: the OS user name).")
]


class KillSwitchCancelError(AlphaFactoryError, RuntimeError):
    """The switch is engaged but cancelling the open orders at the broker failed."""


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (a container without passwd)
        return "unknown"


def _where(lake: Lake) -> str:
    root = lake.location.root
    return f"lake {root if '://' in root else Path(root).resolve()}"


@kill_switch_app.command("engage")
def engage(reason: ReasonOption = "", actor: ActorOption = None) -> None:
    """Engage: no order is sent from now on, every open order is cancelled at the broker."""
    from pipelines.daily.config import DailyConfig
    from pipelines.daily.stages import paper_broker
    from pipelines.execution.execute import engage_kill_switch

    lake = Lake.from_settings()
    config = DailyConfig.from_env()
    broker = paper_broker(lake, config)
    try:
        state, cancelled = engage_kill_switch(
            lake, broker, config.portfolio_id, reason=reason, actor=_actor(actor)
        )
    except BrokerError as exc:
        raise KillSwitchCancelError(
            f"kill switch ENGAGED (no order is sent) but cancelling the open orders of "
            f"{config.portfolio_id} at {broker.name} failed: {exc}; run engage again"
        ) from exc
    finally:
        broker.close()
    typer.echo(
        f"{state.line()}; cancelled {len(cancelled)} open order(s) of "
        f"{config.portfolio_id} at {broker.name} ({_where(lake)})"
    )


@kill_switch_app.command("release")
def release(reason: ReasonOption = "", actor: ActorOption = None) -> None:
    """Release: orders may be sent again (a re-run of the day sends what was blocked)."""
    lake = Lake.from_settings()
    state = kill_switch.release(lake, reason=reason, actor=_actor(actor))
    typer.echo(f"{state.line()} ({_where(lake)})")


@kill_switch_app.command("status")
def status() -> None:
    """The switch's state: engaged or released, since when, by whom, why."""
    lake = Lake.from_settings()
    state = kill_switch.read_state(lake)
    typer.echo(f"{state.line()} ({_where(lake)})")
