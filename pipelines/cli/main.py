"""``alphafactory``: the command-line entry point."""

from __future__ import annotations

import typer

from pipelines.cli.airflow import airflow_app
from pipelines.cli.demo import demo
from pipelines.cli.lake import lake_app
from pipelines.cli.vendor import vendor_app

app = typer.Typer(
    help="Alpha Factory: a quant fund's daily research and rebalancing loop.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold credentials
)
app.add_typer(lake_app, name="lake")
app.add_typer(vendor_app, name="vendor")
app.add_typer(airflow_app, name="airflow")
app.command("demo")(demo)


if __name__ == "__main__":
    app()
