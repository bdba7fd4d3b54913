"""A production-mode Airflow cluster on this machine, for the integration tests here.

:func:`production_cluster` migrates a fresh PostgreSQL metadata DB, starts every component
as its own process — Celery workers, scheduler, DAG processor, API server — with the
environment of :func:`production_environment`, waits until the API answers, the DAGs
under test are parsed and the workers consume, logs in as the admin, and stops everything
on the way out. Tests then drive Airflow only through its public REST API.

By default the workers share the cluster's Airflow home and the test's working directory,
and consume the cluster's queue. A :class:`WorkerSpec` gives a worker its own queue, its
own empty working directory and its own Airflow home (logs included): a machine of its
own, sharing nothing on disk with the others but the DAG files and the configuration.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pytest

from pipelines.net import free_port
from pipelines.orchestration.airflow_env import REPO_ROOT, AirflowEnv, prepare_airflow_home
from pipelines.orchestration.production import (
    ADMIN_USER,
    ProductionSecrets,
    RunningComponent,
    component_command,
    migrate_metadata_db,
    prepare_production_home,
    production_environment,
    start_component,
    stop_components,
)
from tests.production.airflow_api import AirflowApi, wait_for


def require_production_packages() -> None:
    """Fail (not skip) with the fix when a package production mode needs is missing."""
    missing = []
    for dist in ("apache-airflow-providers-celery", "psycopg2-binary", "asyncpg", "redis"):
        try:
            version(dist)
        except PackageNotFoundError:
            missing.append(dist)
    if missing:
        pytest.fail(f"production mode needs {missing}: install them (pyproject dependencies)")


@dataclass(frozen=True)
class WorkerSpec:
    """How one Celery worker starts: its name (Celery node and recorded host name), the
    queue it consumes (None: the cluster's default queue), and its own working directory
    and Airflow home (None: the test's and the cluster's). ``cwd`` and ``home`` are
    created empty when absent."""

    name: str
    queue: str | None = None
    cwd: Path | None = None
    home: Path | None = None


def _ready(worker: RunningComponent) -> Callable[[], bool]:
    """Whether the Celery worker logged ``<node> ready.`` (it consumes from then on)."""
    return lambda: " ready." in worker.log_path.read_text(errors="replace")


@dataclass
class Cluster:
    """The running components, an API client logged in as the admin, and lap timings."""

    env: AirflowEnv
    api: AirflowApi
    admin_password: str = field(repr=False)
    workers: tuple[WorkerSpec, ...] = ()
    components: list[RunningComponent] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    _lap_start: float = field(default_factory=time.perf_counter)

    def lap(self, name: str) -> float:
        """Record the seconds since the previous lap (or the start) as ``timings[name]``."""
        now = time.perf_counter()
        self.timings[name] = now - self._lap_start
        self._lap_start = now
        return self.timings[name]

    def alive(self) -> None:
        """Raise, with its log, if any component has exited (pass as ``wait_for(alive=…)``)."""
        for component in self.components:
            code = component.process.poll()
            if code is not None:
                raise AssertionError(
                    f"{component.name} exited with {code}:\n{component.log_tail()}"
                )

    def logs(self, lines: int = 30) -> str:
        """The tail of every component's log, for assertion messages."""
        return "\n".join(f"--- {c.name}\n{c.log_tail(lines)}" for c in self.components)

    def wait(
        self, what: str, probe: Callable[[], Any], *, timeout: float, interval: float = 1.0
    ) -> Any:
        """:func:`wait_for` ``probe`` (its first truthy result), failing fast (with its log)
        if a component dies."""
        return wait_for(what, probe, timeout=timeout, interval=interval, alive=self.alive)


def _write_local_settings(home: Path, local_settings: str | None) -> None:
    """``<home>/config/airflow_local_settings.py`` (on every component's ``sys.path``)."""
    if local_settings is not None:
        (home / "config").mkdir(parents=True, exist_ok=True)
        (home / "config" / "airflow_local_settings.py").write_text(local_settings)


def _worker_env(env: AirflowEnv, spec: WorkerSpec, local_settings: str | None) -> AirflowEnv:
    """``env`` with the worker's queue and, if it has one, its own prepared home."""
    values = dict(env.values)
    if spec.queue is not None:
        values["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] = spec.queue
    if spec.home is not None:
        home = spec.home.resolve()
        values["AIRFLOW_HOME"] = str(home)
        values["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(home / "plugins")
        values["AIRFLOW__LOGGING__BASE_LOG_FOLDER"] = str(home / "logs")
    worker_env = dataclasses.replace(env, home=Path(values["AIRFLOW_HOME"]), values=values)
    if spec.home is not None:
        prepare_airflow_home(worker_env)
        _write_local_settings(worker_env.home, local_settings)
    return worker_env


def _start(cluster: Cluster, log_dir: Path, local_settings: str | None) -> None:
    """Workers first in the list: :func:`stop_components` stops them first."""
    env = cluster.env
    for spec in cluster.workers:
        worker_env = _worker_env(env, spec, local_settings)
        if spec.cwd is not None:
            spec.cwd.mkdir(parents=True, exist_ok=True)
        command = component_command(
            "celery-worker", worker_env, worker_name=spec.name, concurrency=2, serve_logs=False
        )
        cluster.components.append(
            start_component(
                spec.name,
                command,
                worker_env,
                log_dir,
                extra_env={"ALPHAFACTORY_WORKER_NAME": spec.name},
                cwd=spec.cwd,
            )
        )
    for component in ("scheduler", "dag-processor", "api-server"):
        cluster.components.append(
            start_component(component, component_command(component, env), env, log_dir)
        )


@contextmanager
def production_cluster(
    tmp_path: Path,
    *,
    postgres_db: str,
    redis_queue: tuple[str, str],
    dag_ids: Sequence[str],
    workers: Sequence[str | WorkerSpec] = ("worker-a", "worker-b"),
    extra_env: Mapping[str, str] | None = None,
    local_settings: str | None = None,
) -> Iterator[Cluster]:
    """Start a cluster serving only ``dag_ids`` (files of the repo's ``dags/``); stop it after.

    ``workers``: names (default setup) or :class:`WorkerSpec`. ``extra_env`` is added to
    every component's environment (e.g. the lake root). ``local_settings`` is the source
    of an ``airflow_local_settings.py`` (cluster policies) every component loads. Timings
    (``migrate``, ``api_up``, ``cluster_ready``, the test's own laps, ``stop``) and each
    component's exit time are printed when the cluster stops, whatever the outcome.
    """
    require_production_packages()
    broker_url, queue = redis_queue
    # Only the DAGs under test: other DAG files would cost parse time and need a vendor.
    dags = tmp_path / "dags"
    dags.mkdir()
    for dag_id in dag_ids:
        (dags / f"{dag_id}.py").symlink_to(REPO_ROOT / "dags" / f"{dag_id}.py")
    base_url = f"http://127.0.0.1:{free_port()}"
    prod_secrets = ProductionSecrets.generate()
    env = production_environment(
        secrets=prod_secrets,
        db_url=postgres_db,
        broker_url=broker_url,
        api_url=base_url,
        queue=queue,
        dags_folder=dags,
        vendor_state_dir=tmp_path / "no-vendor",
    )
    # The scheduler would otherwise add a scheduled run for the latest session as soon as
    # a DAG is unpaused (catchup is off, not absent); these tests drive manual runs only.
    values = {**env.values, "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False", **(extra_env or {})}
    env = dataclasses.replace(env, values=values)

    cluster = Cluster(
        env=env,
        api=AirflowApi(base_url),
        admin_password=prod_secrets.admin_password,
        workers=tuple(w if isinstance(w, WorkerSpec) else WorkerSpec(w) for w in workers),
    )
    prepare_production_home(env, prod_secrets)
    _write_local_settings(env.home, local_settings)
    migrate_metadata_db(env)
    cluster.lap("migrate")
    try:
        _start(cluster, tmp_path / "component-logs", local_settings)
        cluster.wait("the API server", cluster.api.healthy, timeout=150)
        cluster.wait("the execution API", cluster.api.execution_api_ready, timeout=90)
        cluster.api.login(ADMIN_USER, prod_secrets.admin_password)
        cluster.lap("api_up")
        for dag_id in dag_ids:

            def parsed(dag_id: str = dag_id) -> bool:
                return cluster.api.request("GET", f"/dags/{dag_id}").status_code == 200

            cluster.wait(f"{dag_id} to be parsed", parsed, timeout=90)
        for worker in cluster.components[: len(cluster.workers)]:
            cluster.wait(f"{worker.name} to be ready", _ready(worker), timeout=60)
        cluster.lap("cluster_ready")
        yield cluster
    finally:
        cluster.api.close()
        stop_started = time.perf_counter()
        exit_seconds = stop_components(cluster.components)
        cluster.timings["stop"] = time.perf_counter() - stop_started
        print("production-mode timings (s):", {k: round(v, 1) for k, v in cluster.timings.items()})
        print("exit after SIGTERM (s):", {k: round(v, 1) for k, v in exit_seconds.items()})
