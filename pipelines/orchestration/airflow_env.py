"""The embedded Airflow: its environment, its metadata DB and a one-run test helper.

Everything Airflow reads is passed as environment variables computed here, in one place,
from :func:`pipelines.config.get_settings`. Nothing is written to the process environment:
callers hand :attr:`AirflowEnv.values` to a subprocess (``airflow …``), which reads its
configuration fresh. That is also why :func:`run_dag_test` runs in a subprocess (see its
docstring): Airflow freezes its configuration and ORM when first imported, so a process
that already imported Airflow with another ``AIRFLOW_HOME`` cannot be re-pointed safely.

This module imports only the standard library (and settings) at top level: the CLI and
tests import it without paying for Airflow.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.config import BLAS_THREADS_ENV, Settings, get_settings
from pipelines.ingest.connections import MASK, vendor_connections

REPO_ROOT = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPO_ROOT / "dags"
PLUGIN_SHIM_NAME = "alphafactory_plugin.py"
PLUGIN_SHIM = (
    '"""Written by pipelines.orchestration.airflow_env: registers Alpha Factory\'s plugin."""\n'
    "from pipelines.orchestration.plugin import AlphaFactoryPlugin  # noqa: F401\n"
)
_MIGRATED_STAMP = ".alphafactory-db-migrated"


#: Airflow's connection variables: ``AIRFLOW_CONN_<CONN_ID>``.
CONN_PREFIX = "AIRFLOW_CONN_"


@dataclass(frozen=True)
class AirflowEnv:
    """The environment of the embedded Airflow.

    ``values`` holds every ``AIRFLOW_*`` variable; ``secret_names`` the ones whose values
    carry credentials (connections). ``repr`` never shows values.
    """

    home: Path
    values: dict[str, str] = field(repr=False)
    secret_names: frozenset[str] = field(default_factory=frozenset)
    #: Display values for ``secret_names``: the same JSON with credentials replaced by ``***``.
    redacted: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def db_path(self) -> Path:
        """The SQLite metadata DB file."""
        return self.home / "airflow.db"

    @property
    def plugins_folder(self) -> Path:
        return Path(self.values["AIRFLOW__CORE__PLUGINS_FOLDER"])

    def masked(self) -> dict[str, str]:
        """``values`` safe to print: secret-bearing variables redacted (or ``***`` entirely)."""
        return {
            k: (self.redacted.get(k, MASK) if k in self.secret_names else v)
            for k, v in self.values.items()
        }

    def export_lines(self) -> list[str]:
        """``export NAME='value'`` lines, secrets masked, sorted by name."""
        return [f"export {k}={_shell_quote(v)}" for k, v in sorted(self.masked().items())]

    def source_lines(self) -> list[str]:
        """A shell script to ``source``: ``export`` lines for every variable without secrets;
        the secret-bearing ones (the vendor connections) only as masked comments.

        Exporting a masked copy would shadow the real value (the CLI and Airflow would send
        ``***`` as the password: "Authentication failed"). Left unset, the CLI defaults the
        vendor connections from settings
        (:func:`pipelines.ingest.connections.ensure_vendor_connections`) and the Airflow
        processes the CLI starts get them from :meth:`process_env`.
        """
        masked = self.masked()
        lines = [
            f"export {k}={_shell_quote(v)}"
            for k, v in sorted(self.values.items())
            if k not in self.secret_names
        ]
        if self.secret_names:
            lines.append(
                "# not exported (credentials; the alphafactory CLI and `alphafactory airflow ui`"
                " take them from settings, ALPHAFACTORY_VENDOR_*):"
            )
            lines += [f"#   {k}={_shell_quote(masked[k])}" for k in sorted(self.secret_names)]
        return lines

    def process_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: ``os.environ``) without stray ``AIRFLOW*`` settings, plus ours.

        Inherited ``AIRFLOW__*`` settings (a developer's shell, a test harness's
        ``UNIT_TEST_MODE``) would silently override the embedded defaults, so they are
        dropped. The user's connections (``AIRFLOW_CONN_<ID>``) are kept — a feed names its
        own connection — and win over the embedded vendor defaults, as they do for the CLI
        (:func:`pipelines.ingest.connections.ensure_vendor_connections`); a masked copy of
        an embedded one (``alphafactory airflow env`` prints secrets as ``***``) is ignored.
        """
        source = os.environ if base is None else base
        env = {k: v for k, v in source.items() if not k.startswith("AIRFLOW_")}
        # One BLAS thread per task unless the user chose (pipelines.config.BLAS_THREADS_ENV).
        env.setdefault(BLAS_THREADS_ENV, "1")
        env.update(self.values)
        for k, v in source.items():
            if k.startswith(CONN_PREFIX) and v != self.redacted.get(k):
                env[k] = v
        return env


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


def airflow_environment(
    settings: Settings | None = None,
    *,
    vendor_host_key: str | None = None,
    vendor_state_dir: Path | None = None,
    vendor_username: str = "vendor",
    parallelism: int = 4,
) -> AirflowEnv:
    """Compute the embedded Airflow's environment (pure: reads files, writes nothing).

    * ``AIRFLOW_HOME`` is ``settings.airflow_home`` (absolute); the SQLite DB, logs, the
      plugins folder and ``airflow.cfg`` live under it. DAGs come from the repo's ``dags/``.
    * LocalExecutor; ``parallelism`` task slots (4 suits a 2-core machine: tasks mostly wait
      on I/O) and one active run per DAG, so backfills do not stampede the lake.
    * ``AIRFLOW_CONN_SFTP_VENDOR`` / ``AIRFLOW_CONN_HTTP_VENDOR``: the vendor connections of
      :func:`pipelines.ingest.connections.vendor_connections` (host key pinned, bearer token).
    """
    s = settings or get_settings()
    home = Path(s.airflow_home).expanduser().resolve()
    conns = vendor_connections(
        s,
        vendor_host_key=vendor_host_key,
        vendor_state_dir=vendor_state_dir,
        vendor_username=vendor_username,
    )
    values = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(parallelism),
        "AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG": "1",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        # One parser process is plenty for a handful of DAG files and leaves a core free.
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        **conns.values,
    }
    return AirflowEnv(
        home=home,
        values=values,
        secret_names=frozenset(conns.values),
        redacted=conns.redacted,
    )


def prepare_airflow_home(env: AirflowEnv) -> None:
    """Create the home, logs and plugins folders and the plugin shim (idempotent)."""
    for folder in (env.home, env.home / "logs", env.plugins_folder):
        folder.mkdir(parents=True, exist_ok=True)
    shim = env.plugins_folder / PLUGIN_SHIM_NAME
    if not shim.is_file() or shim.read_text() != PLUGIN_SHIM:
        tmp = shim.with_suffix(".tmp")
        tmp.write_text(PLUGIN_SHIM)
        tmp.replace(shim)


def airflow_bin() -> str:
    """The ``airflow`` script of the running interpreter's environment."""
    candidate = Path(sys.executable).with_name("airflow")
    return str(candidate) if candidate.exists() else "airflow"


def airflow_cli(
    env: AirflowEnv, *args: str, timeout: float = 300, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``airflow <args>`` in ``env``; with ``check``, raise naming the command and its
    exit code, with the tail of its output, when it fails."""
    proc = subprocess.run(
        [airflow_bin(), *args],
        env=env.process_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"airflow {' '.join(args)} failed (exit {proc.returncode}):\n"
            f"{_tail(proc.stderr or proc.stdout)}"
        )
    return proc


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock: concurrent callers (xdist workers) migrate once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _stamp_text(env: AirflowEnv) -> str:
    from importlib.metadata import version

    return json.dumps(
        {
            "airflow": version("apache-airflow-core"),
            "db": env.values["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
        },
        sort_keys=True,
    )


def ensure_airflow_db(env: AirflowEnv | None = None, *, timeout: float = 600) -> bool:
    """Make the metadata DB current; return whether a migration ran.

    Idempotent and fast when already done: a stamp (Airflow version + DB URL) written after
    a successful ``airflow db migrate`` short-circuits later calls without starting Airflow
    (``airflow db check-migrations`` alone costs ~10 s). Upgrading Airflow changes the
    stamp, so the next call migrates again. Also prepares the home (:func:`prepare_airflow_home`).
    """
    env = env or airflow_environment()
    prepare_airflow_home(env)
    stamp = env.home / _MIGRATED_STAMP
    expected = _stamp_text(env)
    with _locked(env.home / ".migrate.lock"):
        if env.db_path.is_file() and stamp.is_file() and stamp.read_text() == expected:
            return False
        airflow_cli(env, "db", "migrate", timeout=timeout)
        stamp.write_text(expected)
        return True


#: Pools the DAGs use (slots): one optimization and one broker session at a time.
POOLS = {"solver": 1, "broker": 1}


def pool_spec() -> dict[str, dict[str, Any]]:
    """:data:`POOLS` as ``{name: {"slots", "description"}}`` (``airflow pools import``'s
    format; :func:`run_dag_chain`'s child creates the same pools from it)."""
    return {name: {"slots": n, "description": f"alphafactory {name}"} for name, n in POOLS.items()}


def create_pools(env: AirflowEnv) -> None:
    """Create the DAGs' pools (idempotent: ``airflow pools import`` overwrites)."""
    ensure_airflow_db(env)
    path = env.home / "pools.json"
    path.write_text(json.dumps(pool_spec(), indent=1))
    airflow_cli(env, "pools", "import", str(path))


def _when(logical_date: dt.date | dt.datetime | str) -> str:
    """The child's WHEN argument: a session date or aware datetime in ISO form."""
    return logical_date.isoformat() if isinstance(logical_date, dt.date) else str(logical_date)


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@dataclass(frozen=True)
class DagTestResult:
    """Outcome of one :func:`run_dag_test` run."""

    dag_id: str
    state: str
    run_id: str | None
    logical_date: str | None
    data_interval: tuple[str, str] | None
    task_states: dict[str, str]
    asset_events: list[str]
    seconds: float
    output: str = field(repr=False)

    @property
    def ok(self) -> bool:
        return self.state == "success"


def run_dag_test(
    dag_id: str,
    logical_date: dt.date | dt.datetime | str,
    conf: Mapping[str, Any] | None = None,
    *,
    env: AirflowEnv | None = None,
    extra_env: Mapping[str, str] | None = None,
    timeout: float = 900,
) -> DagTestResult:
    """Run one DAG run to completion through Airflow (``dag.test()``) and report it.

    ``logical_date``: a session ``date`` (or ``YYYY-MM-DD``) means "the run for that
    session" — for an :class:`~pipelines.orchestration.timetable.ExchangeCalendarTimetable`
    DAG it becomes the session's run time, whose manual data interval is exactly the
    scheduled run's; a ``datetime`` (or ISO string with a zone) is used as is.

    It runs in a fresh subprocess (``python -m pipelines.orchestration.dagtest``), never
    in the caller's process: Airflow reads its configuration and binds its ORM at import,
    so a process (pytest, the CLI) that already imported Airflow for another home would
    silently use the wrong DB and plugins; a crash or ``sys.exit`` in Airflow cannot take
    the caller down; and the measured cost of the subprocess start (~5 s of Airflow import)
    is small next to the run. The DB is migrated first (:func:`ensure_airflow_db`).
    ``extra_env`` is added to the child's environment (e.g. ``ALPHAFACTORY_LAKE_ROOT``).
    """
    env = env or airflow_environment()
    ensure_airflow_db(env)
    when = _when(logical_date)
    child_env = env.process_env()
    if extra_env:
        child_env.update(extra_env)
    with tempfile.TemporaryDirectory(prefix="dagtest-") as tmp:
        result_file = Path(tmp) / "result.json"
        cmd = [
            sys.executable,
            "-m",
            "pipelines.orchestration.dagtest",
            dag_id,
            when,
            "--result-file",
            str(result_file),
        ]
        if conf is not None:
            cmd += ["--conf", json.dumps(dict(conf))]
        started = time.perf_counter()
        proc = subprocess.run(
            cmd,
            env=child_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=REPO_ROOT,
        )
        seconds = time.perf_counter() - started
        output = proc.stdout + proc.stderr
        if not result_file.is_file():
            raise RuntimeError(
                f"dag test of {dag_id} produced no result (exit {proc.returncode}):\n{_tail(output)}"
            )
        data = json.loads(result_file.read_text())
    return _result(data, seconds, output)


def _result(data: Mapping[str, Any], seconds: float, output: str) -> DagTestResult:
    interval = data.get("data_interval")
    return DagTestResult(
        dag_id=str(data.get("dag_id", "")),
        state=data["state"],
        run_id=data.get("run_id"),
        logical_date=data.get("logical_date"),
        data_interval=(interval[0], interval[1]) if interval else None,
        task_states=data.get("task_states", {}),
        asset_events=data.get("asset_events", []),
        seconds=seconds,
        output=output,
    )


@dataclass(frozen=True)
class ChainedRun:
    """One DAG run of :func:`run_dag_chain`: the DAG, its session (or time) and conf."""

    dag_id: str
    logical_date: dt.date | dt.datetime | str
    conf: Mapping[str, Any] | None = None


def run_dag_chain(
    runs: list[ChainedRun],
    *,
    env: AirflowEnv | None = None,
    extra_env: Mapping[str, str] | None = None,
    log_file: Path,
    on_result: Callable[[DagTestResult], None] | None = None,
    timeout: float = 1800,
) -> list[DagTestResult]:
    """Run ``runs`` one after the other through ``dag.test()`` in ONE child process.

    What :func:`run_dag_test` does per DAG, with Airflow's import, the DAG bag and the
    in-process execution API started once for the whole chain (measured: 10–30 s per DAG
    saved on 2 cores). Each run's outcome is reported to ``on_result`` as soon as it ends
    (the child writes it atomically); the chain stops at the first run that did not
    succeed, so the result list may be shorter than ``runs``. The child's whole output
    goes to ``log_file``; each result's ``output`` is its tail at the time the run ended.
    The :data:`POOLS` are created by the child first (no separate ``airflow pools``).
    """
    env = env or airflow_environment()
    ensure_airflow_db(env)
    child_env = env.process_env()
    if extra_env:
        child_env.update(extra_env)
    chain = [
        {
            "dag_id": r.dag_id,
            "when": _when(r.logical_date),
            "conf": dict(r.conf) if r.conf is not None else None,
        }
        for r in runs
    ]
    results: list[DagTestResult] = []
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dagchain-") as tmp, log_file.open("w") as log:
        cmd = [
            sys.executable,
            "-m",
            "pipelines.orchestration.dagtest",
            "--chain",
            json.dumps(chain),
            "--results-dir",
            tmp,
            "--pools",
            json.dumps(pool_spec()),
        ]
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd, env=child_env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, text=True
        )
        seen: set[str] = set()

        def collect() -> None:
            for path in sorted(Path(tmp).glob("*.json")):
                if path.name in seen:
                    continue
                seen.add(path.name)
                data = json.loads(path.read_text())
                log.flush()
                result = _result(
                    data, float(data.get("seconds", 0.0)), _tail(log_file.read_text(), 200)
                )
                results.append(result)
                if on_result is not None:
                    on_result(result)

        try:
            while proc.poll() is None:
                if time.perf_counter() - started > timeout:
                    proc.kill()
                    raise RuntimeError(f"dag chain timed out after {timeout:.0f} s; see {log_file}")
                collect()
                time.sleep(0.5)
        finally:
            if proc.poll() is None:
                proc.kill()
        collect()
    if len(results) < len(runs) and (not results or results[-1].ok):
        raise RuntimeError(
            f"dag chain ended (exit {proc.returncode}) before "
            f"{runs[len(results)].dag_id} reported:\n{_tail(log_file.read_text())}"
        )
    return results
