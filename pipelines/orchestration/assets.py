"""Airflow asset names for lake tables, shared by producer and consumer DAGs.

One URI per lake table, ``alphafactory://lake/<table>``. A DAG that updates a table emits an
event for that asset; a DAG scheduled on it (``schedule=[lake_asset("prices")]``) runs after.
"""

from __future__ import annotations

from airflow.sdk import Asset, AssetAlias

LAKE_URI_PREFIX = "alphafactory://lake/"
#: Alias resolved at run time by tasks whose table is only known then (mapped tasks).
LAKE_TABLES_ALIAS = "alphafactory-lake-tables"


def lake_asset_uri(table: str) -> str:
    """``alphafactory://lake/<table>``."""
    return f"{LAKE_URI_PREFIX}{table}"


def lake_asset(table: str) -> Asset:
    """The asset standing for lake table ``table`` (named after the table)."""
    return Asset(uri=lake_asset_uri(table), name=f"lake.{table}", group="lake")


def lake_tables_alias() -> AssetAlias:
    """The alias a mapped task lists in ``outlets`` to emit one event per table it touched."""
    return AssetAlias(name=LAKE_TABLES_ALIAS, group="lake")
