"""``alphafactory``: the command-line entry point."""

from __future__ import annotations

import typer

from pipelines.cli.airflow import airflow_app
from pipelines.cli.backtest import backtest
from pipelines.cli.demo import demo
from pipelines.cli.ingest import ingest_app, quarantine_app
from pipelines.cli.lake import lake_app
from pipelines.cli.report import report
from pipelines.cli.research import research_app
from pipelines.cli.status import status
from pipelines.cli.vendor import vendor_app

app = typer.Typer(
    help="Alpha Factory: a quant fund's daily research and rebalancing loop.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold credentials
)
app.add_typer(lake_app, name="lake")
app.add_typer(vendor_app, name="vendor")
app.add_typer(airflow_app, name="airflow")
app.add_typer(ingest_app, name="ingest")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(research_app, name="research")
app.command("demo")(demo)
app.command("report")(report)
app.command("backtest")(backtest)
app.command("status")(status)


if __name__ == "__main__":
    app()
