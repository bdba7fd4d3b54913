"""The PM approval step of ``portfolio_rebalance``: its timeout comes from the daily config,
and on a production cluster a PM's answer through the REST API — or its absence — decides
whether orders leave.

The unit test parses the DAG file in a fresh interpreter (as the DAG processor does) with
``ALPHAFACTORY_DAILY_CONFIG`` set. The integration test runs the DAG with a real scheduler,
DAG processor, API server and a Celery worker on PostgreSQL + Redis
(:func:`tests.production.cluster.production_cluster`) on the small market of
``tests.daily.helpers``, with a config whose PM has one minute to answer:

1. session 2024-06-06: the PM answers "Approve" (``PATCH …/hitlDetails``) → orders for
   the trade date reach the (paper) broker and the audit trail names the PM;
2. the next session: nobody answers → Airflow 3.3's scheduler resolves the task parked in
   ``awaiting_input`` with its default, "Reject", once the minute has passed → execution
   is skipped, no orders, and the audit trail records a rejection by the timeout default.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.daily.config import CONFIG_ENV
from pipelines.orchestration.airflow_env import (
    REPO_ROOT,
    airflow_environment,
    prepare_airflow_home,
)
from tests.daily.helpers import CONFIG, LOOP_DAYS, copy_root, shared_loop_root
from tests.orchestration.airflow_home import use_throwaway_airflow_home
from tests.production.cluster import Cluster, production_cluster

pytestmark = pytest.mark.unit

# The operator test imports Airflow in this process: give it a throwaway home first.
use_throwaway_airflow_home()

DAG_ID = "portfolio_rebalance"
DAG_FILE = REPO_ROOT / "dags" / f"{DAG_ID}.py"
SESSION = dt.date(2024, 6, 6)  # the session after the helper's loop days
NEXT_SESSION = dt.date(2024, 6, 7)
TIMEOUT_MINUTES = 1
PM_TASK = "pm_approval"
HITL_PATH = "/dags/{dag}/dagRuns/{run}/taskInstances/{task}/-1/hitlDetails"

# Parses the DAG file once per config (argv[2]: JSON list; "" = variable unset) the way
# the DAG processor does, and prints the approval task's timeout and default answer.
_PROBE = r"""
import json, os, sys
from airflow.dag_processing.dagbag import DagBag

out = []
for config in json.loads(sys.argv[2]):
    os.environ.pop(sys.argv[3], None)
    if config:
        os.environ[sys.argv[3]] = config
    bag = DagBag(dag_folder=sys.argv[1])
    if bag.import_errors:
        out.append({"error": "\n".join(bag.import_errors.values())})
        continue
    task = bag.dags["portfolio_rebalance"].get_task("pm_approval")
    out.append({"timeout": task.response_timeout.total_seconds(), "defaults": task.defaults})
print(json.dumps(out))
"""


def _write_config(path: Path, **approval: Any) -> Path:
    data = CONFIG.model_dump(mode="json")
    data["approval"].update(approval)
    path.write_text(yaml.safe_dump(data))
    return path


def test_dag_takes_approval_timeout_and_default_from_daily_config(tmp_path: Path) -> None:
    env = airflow_environment(vendor_state_dir=tmp_path / "no-vendor")
    prepare_airflow_home(env)
    configs = [
        str(_write_config(tmp_path / "seven.yaml", auto_approve=False, timeout_minutes=7)),
        str(_write_config(tmp_path / "lenient.yaml", timeout_minutes=3, on_timeout="approve")),
        "",  # unset: the production config (120 minutes, reject)
        str(tmp_path / "missing.yaml"),
    ]
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(DAG_FILE), json.dumps(configs), CONFIG_ENV],
        env=env.process_env(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seven, lenient, production, missing = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seven == {"timeout": 7 * 60, "defaults": ["Reject"]}
    assert lenient == {"timeout": 3 * 60, "defaults": ["Approve"]}
    assert production == {"timeout": 120 * 60, "defaults": ["Reject"]}
    # A config that is not there fails the parse loudly, naming the file.
    assert "missing.yaml does not exist" in missing["error"]


def _resume_event(chosen: str, user: dict[str, str] | None, *, timedout: bool) -> Any:
    """The event ``execute_complete`` gets on a worker: built by Airflow's own HITLDetail
    (as the API's answer handler and the scheduler's timeout sweep build it), through the
    serde round trip of ``next_kwargs``."""
    from airflow.models.hitl import HITLDetail
    from airflow.sdk.serde import deserialize, serialize

    detail = HITLDetail(
        options=["Approve", "Reject"],
        subject="Approve main orders",
        defaults=["Reject"],
        chosen_options=[chosen],
        params_input={},
        responded_by=user,
        responded_at=dt.datetime.now(dt.UTC),
    )
    return deserialize(serialize(detail.as_resume_event_payload(timedout=timedout)))


@pytest.mark.parametrize(
    ("chosen", "user", "timedout", "decision", "actor"),
    [
        ("Approve", {"id": "pm1", "name": "Pat"}, False, "approved", "PM: Pat"),
        ("Reject", {"id": "pm1", "name": "Pat"}, False, "rejected", "PM: Pat"),
        ("Reject", None, True, "rejected", "timeout default after 1 min: Reject"),
    ],
    ids=["pm-approves", "pm-rejects", "timeout-rejects"],
)
def test_every_answer_is_audited_before_downstream_is_skipped(
    monkeypatch: pytest.MonkeyPatch,
    chosen: str,
    user: dict[str, str] | None,
    timedout: bool,
    decision: str,
    actor: str,
) -> None:
    from airflow.providers.common.compat.sdk import DownstreamTasksSkipped
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    from pipelines.daily.approval import AuditedApprovalOperator

    recorded: list[tuple[str, str | None, str]] = []

    def record(session: str, decision: str | None, actor: str) -> str:
        recorded.append((session, decision, actor))
        return str(decision)

    monkeypatch.setattr("pipelines.daily.tasks.record_approval", record)
    with DAG("approval_probe", schedule=None, start_date=dt.datetime(2024, 1, 2, tzinfo=dt.UTC)):
        approval = AuditedApprovalOperator(
            task_id="pm_approval",
            session="2024-06-06",
            subject="Approve main orders",
            response_timeout=dt.timedelta(minutes=1),
        )
        approval >> EmptyOperator(task_id="execute")

    class FakeTI:
        map_index = -1

        def xcom_push(self, key: str, value: Any) -> None:
            pass

    event = _resume_event(chosen, user, timedout=timedout)
    context = {"ti": FakeTI(), "task": approval}
    if chosen == "Approve":
        assert approval.execute_complete(context, event)["chosen_options"] == ["Approve"]
    else:
        # Airflow 3 skips downstream tasks by raising: the record must already be written.
        with pytest.raises(DownstreamTasksSkipped):
            approval.execute_complete(context, event)
    assert recorded == [("2024-06-06", decision, actor)]


# --- live cluster -----------------------------------------------------------------------


def _trigger(cluster: Cluster, session: dt.date) -> str:
    run = cluster.api.json(
        "POST",
        f"/dags/{DAG_ID}/dagRuns",
        json={"logical_date": None, "conf": {"session": session.isoformat()}},
    )
    return str(run["dag_run_id"])


def _states(cluster: Cluster, run_id: str) -> dict[str, str | None]:
    instances = cluster.api.json(
        "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", params={"limit": 100}
    )["task_instances"]
    return {ti["task_id"]: ti["state"] for ti in instances}


def _run_state(cluster: Cluster, run_id: str) -> str:
    return str(cluster.api.json("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")["state"])


def _wait_awaiting_input(cluster: Cluster, run_id: str) -> None:
    """Until ``pm_approval`` waits for a PM; fail at once if the run fails before that."""

    def parked() -> bool:
        if _run_state(cluster, run_id) == "failed":
            raise AssertionError(f"{run_id} failed: {_states(cluster, run_id)}\n{cluster.logs()}")
        return _states(cluster, run_id).get(PM_TASK) == "awaiting_input"

    cluster.wait(f"{PM_TASK} of {run_id} to await input", parked, timeout=240, interval=2)


def _wait_finished(cluster: Cluster, run_id: str, *, timeout: float) -> str:
    def finished() -> str | None:
        state = _run_state(cluster, run_id)
        return state if state in ("success", "failed") else None

    return str(cluster.wait(f"run {run_id}", finished, timeout=timeout, interval=2))


def _approval_audit(lake_root: Path, trade_date: dt.date) -> list[dict[str, Any]]:
    """The ``approval`` events of the audit trail for ``trade_date``: event and detail."""
    from pipelines.execution.records import read_day
    from pipelines.lake import Lake

    audit = read_day(Lake(str(lake_root)), "execution_audit", trade_date, CONFIG.portfolio_id)
    rows = audit[audit["stage"] == "approval"]
    return [
        {"event": e, **json.loads(d)} for e, d in zip(rows["event"], rows["detail"], strict=True)
    ]


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.xdist_group("production_cluster")  # never two clusters at once (Makefile)
def test_pm_approves_through_rest_api_then_timeout_rejects(
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_db: str,
    redis_queue: tuple[str, str],
) -> None:
    from pipelines.timeline import trading_calendar

    next_session = trading_calendar().next_session
    from pipelines.execution.records import read_day
    from pipelines.lake import Lake

    started = time.perf_counter()
    assert LOOP_DAYS[-1] < SESSION
    root = copy_root(shared_loop_root(tmp_path_factory.getbasetemp()), tmp_path / "root")
    lake_root = root / "lake"
    lake_seconds = time.perf_counter() - started
    config = _write_config(
        tmp_path / "daily.yaml", auto_approve=False, timeout_minutes=TIMEOUT_MINUTES
    )
    extra_env = {
        "ALPHAFACTORY_LAKE_ROOT": str(lake_root),
        CONFIG_ENV: str(config),
        # The timeout sweep runs every 15 s by default: check often, so the test waits
        # for the minute of the config, not for the sweep.
        "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "2",
    }
    with production_cluster(
        tmp_path,
        postgres_db=postgres_db,
        redis_queue=redis_queue,
        dag_ids=[DAG_ID],
        workers=("worker-a",),  # the DAG is a chain: one worker with two slots suffices
        extra_env=extra_env,
    ) as cluster:
        cluster.timings["lake"] = lake_seconds
        api = cluster.api
        from pipelines.orchestration.airflow_env import POOLS

        for name, slots in POOLS.items():
            api.json("POST", "/pools", json={"name": name, "slots": slots})
        api.json("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})

        # Run 1: the PM approves through the REST API.
        run1 = _trigger(cluster, SESSION)
        _wait_awaiting_input(cluster, run1)
        cluster.lap("run1_to_approval")
        hitl1_path = HITL_PATH.format(dag=DAG_ID, run=run1, task=PM_TASK)
        request = api.json("GET", hitl1_path)
        answer = api.json("PATCH", hitl1_path, json={"chosen_options": ["Approve"]})
        final1 = _wait_finished(cluster, run1, timeout=180)
        states1 = _states(cluster, run1)
        cluster.lap("run1_after_approval")

        # Run 2: nobody answers; the scheduler applies the default when the minute is up.
        run2 = _trigger(cluster, NEXT_SESSION)
        final2 = _wait_finished(cluster, run2, timeout=TIMEOUT_MINUTES * 60 + 240)
        states2 = _states(cluster, run2)
        hitl2 = api.json("GET", HITL_PATH.format(dag=DAG_ID, run=run2, task=PM_TASK))
        cluster.lap("run2")
        logs = cluster.logs()
    print(f"test total: {time.perf_counter() - started:.1f}s")

    lake = Lake(str(lake_root))
    assert final1 == "success", f"{states1}\n{logs}"
    assert request["options"] == ["Approve", "Reject"] and request["defaults"] == ["Reject"]
    assert request["subject"] == f"Approve {CONFIG.portfolio_id} orders for 2024-06-07"
    assert answer["chosen_options"] == ["Approve"]
    assert answer["responded_by"]["name"] == "admin"
    assert states1[PM_TASK] == "success" and states1["auto_approve"] == "skipped"
    for task in ("execute", "reconcile", "report"):
        assert states1[task] == "success", (task, states1)
    trade1 = next_session(SESSION)
    assert len(read_day(lake, "orders", trade1, CONFIG.portfolio_id)) > 0
    (audit1,) = _approval_audit(lake_root, trade1)
    assert audit1["event"] == "pm_approved" and audit1["decision"] == "approved"
    assert audit1["actor"] == "PM: admin", audit1

    assert final2 == "success", f"{states2}\n{logs}"
    assert states2[PM_TASK] == "success", states2  # a "Reject" is an answer, not a failure
    assert states2["execute"] == "skipped", states2
    assert states2["reconcile"] == "success" and states2["report"] == "success", states2
    # Airflow wrote the default as the response, by nobody, once the minute had passed.
    assert hitl2["chosen_options"] == ["Reject"] and hitl2["responded_by_user"] is None
    waited = dt.datetime.fromisoformat(hitl2["responded_at"]) - dt.datetime.fromisoformat(
        hitl2["created_at"]
    )
    assert waited >= dt.timedelta(minutes=TIMEOUT_MINUTES), waited
    trade2 = next_session(NEXT_SESSION)
    assert read_day(lake, "orders", trade2, CONFIG.portfolio_id).empty
    (audit2,) = _approval_audit(lake_root, trade2)
    assert audit2["event"] == "pm_rejected" and audit2["decision"] == "rejected"
    assert audit2["actor"] == f"timeout default after {TIMEOUT_MINUTES} min: Reject", audit2
