"""Airflow asset names for lake tables, shared by producer and consumer DAGs.

One URI per lake table, ``alphafactory://lake/<table>``. A DAG that updates a table emits an
event for that asset; a DAG scheduled on it (``schedule=[lake_asset("prices")]``) runs after.
"""

from __future__ import annotations

from typing import Any

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


#: Contract outcomes, best first: an event's ``contract`` is the worst of its files'.
_CONTRACT_ORDER = ("passed", "warned", "blocked")
_STATUS_CONTRACT = {"loaded": "passed", "released": "passed", "warned": "warned"}


def ingest_event_extra(
    feed: str, session: str, outcomes: list[Any], open_quarantines: list[str]
) -> dict[str, Any]:
    """The ``extra`` of a lake asset event emitted by a ``vendor_ingest`` task.

    ``outcomes`` are :class:`pipelines.ingest.flow.FileOutcome` s of the run. JSON only:
    rows loaded, files by status, the contract result (worst outcome over the files and
    the rules that failed or warned), this run's quarantine ids, the feed's records still
    open, the Data Docs pages of the contract runs and the address a browser opens them at
    (:func:`pipelines.contracts.data_docs.data_docs_url`: the page, or the index).
    """
    from pipelines.contracts.data_docs import data_docs_url

    statuses: dict[str, int] = {}
    rules: list[str] = []
    contract = "passed"
    quarantined: list[str] = []
    docs: list[str] = []
    for o in outcomes:
        statuses[o.status] = statuses.get(o.status, 0) + 1
        rules += [r for r in o.rules if r not in rules]
        if o.status == "quarantined":
            contract = "blocked"
            if o.quarantine_id:
                quarantined.append(o.quarantine_id)
        seen = _STATUS_CONTRACT.get(o.status, "passed")
        if _CONTRACT_ORDER.index(seen) > _CONTRACT_ORDER.index(contract):
            contract = seen
        if o.data_docs:
            docs.append(o.data_docs)
    return {
        "feed": feed,
        "session": session,
        "rows": sum(int(o.rows) for o in outcomes),
        "files": statuses,
        "contract": {"result": contract, "rules": rules},
        "quarantine_ids": quarantined,
        "open_quarantines": open_quarantines,
        "data_docs": docs,
        "data_docs_url": data_docs_url(docs) if docs else None,
    }


def open_quarantine_ids(lake: Any, feed: str) -> list[str]:
    """Ids of ``feed``'s quarantine records still holding data back."""
    from pipelines.ingest import quarantine

    if lake.table("quarantine") is None:
        return []
    return sorted(
        str(r["quarantine_id"]) for r in quarantine.list_records(lake, "open") if r["feed"] == feed
    )
