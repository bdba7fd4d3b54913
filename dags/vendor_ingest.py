"""Vendor ingestion for each trading session: wait for the files, land, validate, load.

Wiring only. Per SFTP feed: an SFTP sensor (reschedule mode, so a waiting sensor holds
no worker slot) waits for the session's manifest until the deadline — past it the run
fails, naming feed and session — then one task runs
:func:`pipelines.ingest.runtime.ingest_day`. REST feeds have no sensor: their window is
defined by publication time. The security master loads before prices and corporate
actions, which are validated against it. Each load emits its lake table's asset, which
the research DAG is scheduled on; the event's extra says rows, contract result,
quarantines and Data Docs pages (:func:`pipelines.orchestration.assets.ingest_event_extra`);
each ingest task instance has a "Data Docs" extra link (:mod:`pipelines.orchestration.links`).
A deadline alert (:mod:`pipelines.orchestration.deadlines`) names the late file-drop feeds.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, Param

# airflow.sdk exports these too, but its type stub (3.3) does not list them yet.
from airflow.sdk.definitions.callback import AsyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

from pipelines.ingest.feed_index import feed_dependencies, feed_index
from pipelines.ingest.sensor import VendorDropSensor
from pipelines.orchestration.assets import (
    ingest_event_extra,
    lake_asset,
    lake_asset_uri,
    open_quarantine_ids,
)
from pipelines.orchestration.callbacks import on_failure_log
from pipelines.orchestration.deadlines import vendor_files_late
from pipelines.orchestration.links import push_data_docs, validating_task
from pipelines.orchestration.settings_light import (
    dag_start_date,
    ingest_deadline,
    ingest_poke_interval,
)
from pipelines.orchestration.timetable import ExchangeCalendarTimetable, session_of

log = logging.getLogger(__name__)


def _session(data_interval_end: Any) -> str:
    return session_of(data_interval_end).isoformat()


with DAG(
    dag_id="vendor_ingest",
    description="Wait for every vendor feed of the session, land raw files, validate, load silver.",
    schedule=ExchangeCalendarTimetable(),
    start_date=dag_start_date(),
    catchup=False,
    max_active_runs=1,
    tags=["ingest", "vendor"],
    user_defined_filters={"session": _session},
    # Airflow 3 deadline alert: past the ingest deadline after the run was queued, the
    # triggerer names the file-drop feeds still missing (status shows them "late").
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(seconds=ingest_deadline()),
        callback=AsyncCallback(
            vendor_files_late,
            kwargs={
                "feeds": [
                    e.name
                    for e in feed_index()
                    if e.protocol == "sftp" and e.remote_dir and e.manifest
                ]
            },
        ),
    ),
    params={
        # Rows are known from our receipt; a run that loads a past session as the vendor
        # published it says why (recorded in ingest_runs). `alphafactory airflow backfill
        # --backdate-reason` and `dags-test --backdate-reason` set it.
        "backdate_reason": Param(
            None,
            type=["null", "string"],
            description="load at the vendor's publish time instead of receipt, and why",
        ),
    },
    default_args={
        "owner": "data-engineering",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=15),
        "on_failure_callback": on_failure_log,
    },
) as dag:

    @validating_task
    def ingest(feed: str, session: str, table: str) -> list[dict[str, Any]]:
        """Ingest ``feed`` for ``session``; the event of ``table``'s asset carries rows,
        contract result, quarantines and Data Docs pages as its extra.

        Transient errors (network, vendor 5xx) retry; a quarantined batch fails at once:
        retrying cannot fix bad data, a data engineer must look at it.
        """
        import datetime as dt

        from airflow.sdk import get_current_context
        from airflow.sdk.exceptions import AirflowFailException

        from pipelines.ingest.flow import BatchQuarantined
        from pipelines.ingest.knowledge import Backdate
        from pipelines.ingest.runtime import ingest_day
        from pipelines.lake import Lake

        context = get_current_context()
        reason = (context.get("params") or {}).get("backdate_reason")
        backdate = Backdate(reason, by=f"airflow {context['run_id']}") if reason else None
        try:
            outcomes = ingest_day(
                Lake.from_settings(), dt.date.fromisoformat(session), feed, backdate=backdate
            )
        except BatchQuarantined as exc:
            for o in exc.outcomes:
                if o.data_docs:
                    log.error("Data Docs of %s: %s", o.file_name, o.data_docs)
            push_data_docs(context, [o.data_docs for o in exc.outcomes if o.data_docs])
            raise AirflowFailException(str(exc)) from exc
        push_data_docs(context, [o.data_docs for o in outcomes if o.data_docs])
        lake = Lake.from_settings()
        extra = ingest_event_extra(feed, session, outcomes, open_quarantine_ids(lake, feed))
        context["outlet_events"][lake_asset(table)].extra = extra
        log.info("asset %s extra: %s", lake_asset_uri(table), extra)
        return [
            {"file": o.file_name, "status": o.status, "rows": o.rows, "sha256": o.sha256}
            for o in outcomes
        ]

    session = "{{ data_interval_end | session }}"
    loaded: dict[str, Any] = {}
    entries = feed_index()
    for entry in entries:
        load = ingest.override(task_id=f"ingest_{entry.name}", outlets=[lake_asset(entry.table)])(
            entry.name, session, entry.table
        )
        if entry.protocol == "sftp" and entry.remote_dir and entry.manifest:
            wait = VendorDropSensor(
                task_id=f"wait_{entry.name}",
                feed=entry.name,
                session=session,
                sftp_conn_id=entry.connection_id,
                remote_dir=entry.remote_dir,
                manifest=entry.manifest,
                mode="reschedule",
                poke_interval=ingest_poke_interval(),
                timeout=ingest_deadline(),
            )
            wait >> load
        loaded[entry.name] = load
    # the backfill's dependency rule: security master before the feeds checked against it
    for name, upstream in feed_dependencies(entries).items():
        for dep in upstream:
            loaded[dep] >> loaded[name]
