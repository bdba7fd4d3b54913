"""``alphafactory``: the command-line entry point.

Every :class:`~pipelines.errors.AlphaFactoryError` (a date outside the calendar, a bad
feed file, a quarantined batch, …) ends as one plain line on stderr, ``error: <message>``,
and exit code 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os

# Before anything imports numpy: one BLAS thread unless the user chose (pipelines.config).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from pipelines.cli.airflow import airflow_app
from pipelines.cli.audit import audit_app
from pipelines.cli.backtest import backtest_app
from pipelines.cli.contracts import contracts_app
from pipelines.cli.demo import demo
from pipelines.cli.ingest import ingest_app, quarantine_app
from pipelines.cli.kill_switch import kill_switch_app
from pipelines.cli.lake import lake_app
from pipelines.cli.quiet import quiet_libraries
from pipelines.cli.replay import replay
from pipelines.cli.report import report
from pipelines.cli.research import research_app
from pipelines.cli.rollout import rollout_app
from pipelines.cli.status import status
from pipelines.cli.vendor import vendor_app
from pipelines.errors import AlphaFactoryError

#: Exit code of a command refused with an :class:`AlphaFactoryError`.
ERROR_EXIT_CODE = 1


def error_line(exc: AlphaFactoryError) -> str:
    """``exc`` as the one line the CLI prints: ``error: <message>`` (newlines folded)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return "error: " + ("; ".join(lines) or type(exc).__name__)


class AlphaFactoryGroup(TyperGroup):
    """The root command group: turns an :class:`AlphaFactoryError` from any subcommand
    into :func:`error_line` on stderr (no rich markup, no traceback) and a non-zero exit."""

    def invoke(self, ctx: Any) -> Any:
        try:
            with quiet_libraries(verbose=bool(ctx.params.get("verbose"))):
                return super().invoke(ctx)
        except AlphaFactoryError as exc:
            typer.echo(error_line(exc), err=True)  # plain text: no rich markup
            raise typer.Exit(ERROR_EXIT_CODE) from None


app = typer.Typer(
    cls=AlphaFactoryGroup,
    help="Alpha Factory: a quant fund's daily research and rebalancing loop.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold credentials
)


@app.callback()
def root(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show the libraries' log lines and warnings")
    ] = False,
) -> None:
    """Alpha Factory: a quant fund's daily research and rebalancing loop."""


app.add_typer(lake_app, name="lake")
app.add_typer(vendor_app, name="vendor")
app.add_typer(airflow_app, name="airflow")
app.add_typer(ingest_app, name="ingest")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(contracts_app, name="contracts")
app.add_typer(research_app, name="research")
app.add_typer(kill_switch_app, name="kill-switch")
app.add_typer(audit_app, name="audit")
app.add_typer(rollout_app, name="rollout")
app.command("demo")(demo)
app.command("report")(report)
app.add_typer(backtest_app, name="backtest")
app.command("replay")(replay)
app.command("status")(status)


if __name__ == "__main__":
    app()
