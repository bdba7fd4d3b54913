"""``python -m pipelines.orchestration.dagtest DAG_ID WHEN``: one DAG run via ``dag.test()``.

The child process behind :func:`pipelines.orchestration.airflow_env.run_dag_test`; it
expects the embedded Airflow environment in ``os.environ`` (set by the parent). It does
what ``airflow dags test`` does, plus two things that command cannot: it maps a session
date to the run time of that session for exchange-calendar DAGs, and it writes the run's
outcome (state, interval, every task instance's state) as JSON for the caller to assert on.
Exit status: 0 when the run succeeded, 1 when it did not.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any


def _resolve_logical_date(dag: Any, when: str) -> dt.datetime:
    """A session date → the DAG's run time for it; an aware ISO datetime → itself."""
    import pendulum

    from pipelines.orchestration.timetable import ExchangeCalendarTimetable

    if "T" not in when and " " not in when:
        session = dt.date.fromisoformat(when)
        timetable = dag.timetable
        if isinstance(timetable, ExchangeCalendarTimetable):
            if not timetable.is_session(session):
                raise SystemExit(f"{session} is not a {timetable.calendar} session")
            return timetable.run_time(session)
        # An asset-scheduled DAG (daily_research, portfolio_rebalance) takes its session from
        # the run's local date: at midnight UTC of D it is still D - 1 in New York, so the
        # run "for D" runs at D's run time, when D's vendor_ingest would have triggered it.
        from pipelines.orchestration.run_session import session_run_time

        return pendulum.instance(session_run_time(session))
    instant = dt.datetime.fromisoformat(when)
    if instant.tzinfo is None:
        raise SystemExit(f"{when!r} has no time zone; e.g. 2024-07-05T23:00:00+00:00")
    return pendulum.instance(instant)


def _asset_event_uris(dag_id: str, run_id: str) -> list[str]:
    """URIs of the asset events the run emitted, sorted."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(AssetModel.uri)
            .join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
            .where(AssetEvent.source_dag_id == dag_id, AssetEvent.source_run_id == run_id)
        ).all()
    return sorted(rows)


def run_one(dag_id: str, when: str, conf: dict[str, Any] | None) -> dict[str, Any]:
    """Run ``dag_id`` once through ``dag.test()`` in this process; return its outcome."""
    from airflow.utils.cli import get_bagged_dag

    started = time.perf_counter()
    dag = get_bagged_dag(bundle_names=None, dag_id=dag_id)
    logical_date = _resolve_logical_date(dag, when)
    # Airflow 3.3.2's dag.test() looks the DAG's deadline alerts up by id when the run
    # ends, but holds the unserialized alerts (StatementError "'dict' object has no
    # attribute 'hex'"); no triggerer runs here to fire them anyway.
    dag.deadline = None
    run = dag.test(logical_date=logical_date, run_conf=conf)
    task_states = {
        (ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"): str(ti.state)
        for ti in run.get_task_instances()
    }
    interval = (
        [run.data_interval_start.isoformat(), run.data_interval_end.isoformat()]
        if run.data_interval_start is not None and run.data_interval_end is not None
        else None
    )
    return {
        "dag_id": run.dag_id,
        "asset_events": _asset_event_uris(run.dag_id, run.run_id),
        "state": str(run.state),
        "run_id": run.run_id,
        "logical_date": run.logical_date.isoformat() if run.logical_date else None,
        "data_interval": interval,
        "task_states": task_states,
        "seconds": time.perf_counter() - started,
    }


def ensure_pools(pools: dict[str, dict[str, Any]]) -> None:
    """Create or resize the pools ``{name: {"slots", "description"}}`` (the format of
    ``airflow pools import``) in the metadata DB (idempotent)."""
    from airflow.models.pool import Pool

    for name, spec in pools.items():
        Pool.create_or_update_pool(
            name,
            slots=int(spec["slots"]),
            description=str(spec.get("description", "")),
            include_deferred=False,
        )


def main(argv: list[str] | None = None) -> int:
    """Run the DAG(s) once each, in order; write each outcome as JSON; 0 if all succeeded.

    One DAG: ``DAG_ID WHEN --result-file F``. A chain: ``--chain JSON --results-dir D``
    with JSON a list of ``{"dag_id", "when", "conf"}``: the DAGs run one after the other
    in this one process (Airflow's import, DAG bag and in-process execution API are paid
    once, not once per DAG), each outcome written to ``D/<n>-<dag_id>.json`` as soon as
    its run ends; the chain stops at the first run that did not succeed.
    """
    parser = argparse.ArgumentParser(prog="python -m pipelines.orchestration.dagtest")
    parser.add_argument("dag_id", nargs="?")
    parser.add_argument("when", nargs="?", help="session date YYYY-MM-DD or aware ISO datetime")
    parser.add_argument("--conf", default=None, help="JSON run conf")
    parser.add_argument("--result-file", type=Path, default=None)
    parser.add_argument("--chain", default=None, help="JSON list of {dag_id, when, conf}")
    parser.add_argument("--results-dir", type=Path, default=None)
    parser.add_argument("--pools", default=None, help="JSON {pool: {slots, description}}")
    args = parser.parse_args(argv)
    if args.pools:
        ensure_pools(json.loads(args.pools))
    if args.chain is not None:
        if args.results_dir is None:
            parser.error("--chain needs --results-dir")
        for n, item in enumerate(json.loads(args.chain)):
            outcome = run_one(item["dag_id"], item["when"], item.get("conf"))
            tmp = args.results_dir / f".{n}.tmp"
            tmp.write_text(json.dumps(outcome, indent=1))
            tmp.rename(args.results_dir / f"{n:02d}-{item['dag_id']}.json")  # whole or absent
            if outcome["state"] != "success":
                return 1
        return 0
    if args.dag_id is None or args.when is None or args.result_file is None:
        parser.error("DAG_ID WHEN --result-file F, or --chain JSON --results-dir D")
    outcome = run_one(args.dag_id, args.when, json.loads(args.conf) if args.conf else None)
    args.result_file.write_text(json.dumps(outcome, indent=1))
    return 0 if outcome["state"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
