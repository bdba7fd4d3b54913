"""Airflow in production mode: PostgreSQL metadata DB, CeleryExecutor on Redis.

The embedded default (:mod:`pipelines.orchestration.airflow_env`) runs everything in one
scheduler with SQLite and the LocalExecutor. Production mode splits Airflow into its
components, each its own process (or container), all sharing one environment computed here:

* ``airflow scheduler`` — schedules runs, sends task instances to Celery;
* ``airflow dag-processor`` — parses the DAG files into the metadata DB;
* ``airflow api-server`` — the UI, the public REST API (``/api/v2``) and the *execution
  API* (``/execution``) through which Airflow 3 workers report task state;
* ``airflow celery worker`` (one or more) — take task instances from the Redis broker and
  run them; Celery task results go to PostgreSQL (``db+postgresql://…``).

Every component needs the same JWT secret (the scheduler signs the tokens workers present
to the execution API), the same Fernet key (connections and variables in the DB) and the
same API secret key: :class:`ProductionSecrets` holds them, generated once per deployment.

Like the embedded module, this one imports only the standard library (and settings) at
top level; it is also imported by every task process through ``hostname_callable``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from secrets import token_bytes, token_urlsafe
from typing import IO, Literal
from urllib.parse import urlsplit, urlunsplit

from pipelines.config import Settings, get_settings
from pipelines.orchestration.airflow_env import (
    MASK,
    AirflowEnv,
    airflow_bin,
    airflow_cli,
    airflow_environment,
    prepare_airflow_home,
)

Component = Literal["scheduler", "dag-processor", "api-server", "celery-worker"]
ADMIN_USER = "admin"
PASSWORDS_FILE_NAME = "simple_auth_manager_passwords.json"
HOSTNAME_CALLABLE = "pipelines.orchestration.production.worker_hostname"
CELERY_CONFIG_OPTIONS = "pipelines.orchestration.celery_config.CELERY_CONFIG"


def worker_hostname() -> str:
    """The host name Airflow records for this process (``[core] hostname_callable``).

    ``ALPHAFACTORY_WORKER_NAME`` when set, else the machine's FQDN. Several workers on one
    machine (the integration test, a laptop) are told apart by their name; in containers
    each worker has its own host name and the variable stays unset.
    """
    return get_settings().worker_name or socket.getfqdn()


@dataclass(frozen=True)
class ProductionSecrets:
    """The secrets every Airflow component of one deployment must share.

    ``repr`` shows none of them. ``admin_password`` is the API/UI password of the
    ``admin`` user of Airflow's simple auth manager.
    """

    jwt_secret: str = field(repr=False)
    api_secret_key: str = field(repr=False)
    fernet_key: str = field(repr=False)
    admin_password: str = field(repr=False)

    @classmethod
    def generate(cls) -> ProductionSecrets:
        """Fresh random secrets (the Fernet key in Fernet's url-safe base64 format)."""
        return cls(
            jwt_secret=token_urlsafe(48),
            api_secret_key=token_urlsafe(32),
            fernet_key=base64.urlsafe_b64encode(token_bytes(32)).decode(),
            admin_password=token_urlsafe(18),
        )

    @classmethod
    def load_or_create(cls, path: Path) -> ProductionSecrets:
        """Read ``path`` (JSON), or generate secrets and write them there, mode 0600."""
        if path.is_file():
            return cls(**json.loads(path.read_text()))
        created = cls.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(asdict(created), handle)
        return created


def redact_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{netloc}"))


def production_environment(
    settings: Settings | None = None,
    *,
    secrets: ProductionSecrets,
    db_url: str | None = None,
    broker_url: str | None = None,
    result_backend: str | None = None,
    api_url: str | None = None,
    queue: str | None = None,
    dags_folder: Path | None = None,
    vendor_host_key: str | None = None,
    vendor_state_dir: Path | None = None,
    parallelism: int = 8,
) -> AirflowEnv:
    """Compute the environment shared by every Airflow component in production mode.

    Starts from the embedded environment (home, plugins, vendor connections) and replaces
    the executor and the databases. Explicit arguments win over settings:

    * ``db_url`` (``ALPHAFACTORY_AIRFLOW_DB_URL``, required): SQLAlchemy URL of the
      PostgreSQL metadata DB, e.g. ``postgresql+psycopg2://airflow@127.0.0.1:5432/airflow``;
    * ``broker_url`` (``ALPHAFACTORY_CELERY_BROKER_URL``): the Redis broker;
    * ``result_backend`` (``ALPHAFACTORY_CELERY_RESULT_BACKEND``): default ``db+`` the
      metadata DB URL, so task results live in PostgreSQL next to Airflow's state;
    * ``api_url`` (``ALPHAFACTORY_AIRFLOW_API_URL``): the API server's base URL as workers
      reach it; the execution API is ``<api_url>/execution/``. Its port is also the
      port ``airflow api-server`` listens on;
    * ``queue`` (``ALPHAFACTORY_AIRFLOW_QUEUE``): the Celery queue tasks go to by default
      (workers must consume it: :func:`component_command`);
    * ``dags_folder``: default the repository's ``dags/``;
    * ``parallelism``: the scheduler's task slots across all workers (each worker's own
      limit is its ``--concurrency``).

    Values holding credentials (DB and broker URLs, secrets, connections) are listed in
    ``secret_names`` and redacted by :meth:`AirflowEnv.masked`.
    """
    s = settings or get_settings()
    db = db_url or (s.airflow_db_url.get_secret_value() if s.airflow_db_url else None)
    if not db:
        raise ValueError(
            "production mode needs a PostgreSQL metadata DB: set ALPHAFACTORY_AIRFLOW_DB_URL "
            "(e.g. postgresql+psycopg2://airflow@127.0.0.1:5432/airflow)"
        )
    if not db.startswith("postgresql"):
        raise ValueError(f"production metadata DB must be PostgreSQL, got {redact_url(db)!r}")
    broker = broker_url or s.celery_broker_url.get_secret_value()
    if result_backend is None and s.celery_result_backend is not None:
        result_backend = s.celery_result_backend.get_secret_value()
    backend = result_backend or f"db+{db}"
    base_url = (api_url or s.airflow_api_url).rstrip("/")
    api = urlsplit(base_url)
    task_queue = queue or s.airflow_queue

    base = airflow_environment(
        s,
        vendor_host_key=vendor_host_key,
        vendor_state_dir=vendor_state_dir,
        parallelism=parallelism,
    )
    home = base.home
    values = dict(base.values)
    if dags_folder is not None:
        values["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags_folder.resolve())
    # Dropped: the embedded home's SQLite DB has no meaning here.
    values.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    prod = {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db,
        "AIRFLOW__CELERY__BROKER_URL": broker,
        "AIRFLOW__CELERY__RESULT_BACKEND": backend,
        # Publishing a task to the broker may take longer than the 1 s default on a busy
        # host; a timed-out publish is retried and may then reach the broker twice.
        "AIRFLOW__CELERY__OPERATION_TIMEOUT": "10",
        # Airflow's default, stated: a task still unacknowledged after this long is handed to
        # another worker, so it must exceed our longest task (and silences a startup warning).
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "86400",
        # Airflow's Celery defaults plus workers that preload our library before forking.
        "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": CELERY_CONFIG_OPTIONS,
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": task_queue,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__API__PORT": str(api.port or (443 if api.scheme == "https" else 80)),
        # One API worker process: each costs an Airflow import and ~200 MB.
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.jwt_secret,
        "AIRFLOW__API__SECRET_KEY": secrets.api_secret_key,
        "AIRFLOW__CORE__FERNET_KEY": secrets.fernet_key,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / PASSWORDS_FILE_NAME),
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": HOSTNAME_CALLABLE,
    }
    values.update(prod)
    secret_names = set(base.secret_names) | {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__CELERY__BROKER_URL",
        "AIRFLOW__CELERY__RESULT_BACKEND",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__API__SECRET_KEY",
        "AIRFLOW__CORE__FERNET_KEY",
    }
    redacted = dict(base.redacted)
    for name in (
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__CELERY__BROKER_URL",
        "AIRFLOW__CELERY__RESULT_BACKEND",
    ):
        redacted[name] = redact_url(values[name])
    return AirflowEnv(
        home=home, values=values, secret_names=frozenset(secret_names), redacted=redacted
    )


def prepare_production_home(env: AirflowEnv, secrets: ProductionSecrets) -> None:
    """Create the home (as the embedded one) and write the admin's password file (0600).

    The simple auth manager reads ``{"admin": "<password>"}`` from that file and generates
    a password only for users missing from it; seeding it makes the password ours.
    """
    prepare_airflow_home(env)
    path = Path(env.values["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    content = json.dumps({ADMIN_USER: secrets.admin_password}) + "\n"
    if path.is_file() and path.read_text() == content:
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)


def migrate_metadata_db(env: AirflowEnv, *, timeout: float = 600) -> None:
    """``airflow db migrate`` against the production DB (idempotent); raise with its output."""
    airflow_cli(env, "db", "migrate", timeout=timeout)


def component_command(
    component: Component,
    env: AirflowEnv,
    *,
    worker_name: str | None = None,
    concurrency: int = 2,
    serve_logs: bool = True,
) -> list[str]:
    """The command line that starts ``component`` with ``env``.

    The API server listens on all interfaces at ``AIRFLOW__API__PORT`` only when its base
    URL is not loopback; on loopback it binds 127.0.0.1. A Celery worker consumes the
    default queue; ``worker_name`` becomes its Celery node name (``<name>@<host>``), which
    must be unique per broker. ``serve_logs=False`` skips the worker's log server (port
    8793): workers sharing one machine and log folder need none, and would clash on it.
    """
    airflow = airflow_bin()
    if component == "scheduler":
        return [airflow, "scheduler"]
    if component == "dag-processor":
        return [airflow, "dag-processor"]
    if component == "api-server":
        host = urlsplit(env.values["AIRFLOW__API__BASE_URL"]).hostname or "0.0.0.0"
        bind = host if host in {"127.0.0.1", "localhost", "::1"} else "0.0.0.0"
        return [airflow, "api-server", "--host", bind, "--port", env.values["AIRFLOW__API__PORT"]]
    cmd = [
        airflow,
        "celery",
        "worker",
        "--queues",
        env.values["AIRFLOW__OPERATORS__DEFAULT_QUEUE"],
        "--concurrency",
        str(concurrency),
    ]
    if worker_name:
        cmd += ["--celery-hostname", f"{worker_name}@%h"]
    if not serve_logs:
        cmd.append("--skip-serve-logs")
    return cmd


@dataclass
class RunningComponent:
    """One started component: its process (leader of its own process group) and log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes] = field(repr=False)

    def log_tail(self, lines: int = 60) -> str:
        """The last ``lines`` lines of the component's output (the child writes the file)."""
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def start_component(
    name: str,
    command: Sequence[str],
    env: AirflowEnv,
    log_dir: Path,
    *,
    extra_env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> RunningComponent:
    """Start ``command`` in a new session (its own process group), output to ``<name>.log``.

    ``cwd`` is the component's working directory (default: the caller's).

    A new session lets :func:`stop_components` end the component together with every
    child it forks (gunicorn/uvicorn workers, Celery pool processes, task supervisors).
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log = log_path.open("ab")
    child_env = env.process_env()
    if extra_env:
        child_env.update(extra_env)
    process = subprocess.Popen(
        list(command),
        env=child_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        cwd=cwd,
    )
    return RunningComponent(name=name, process=process, log_path=log_path, _log=log)


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def stop_components(
    components: Sequence[RunningComponent], *, grace: float = 20.0
) -> dict[str, float]:
    """Stop every component; return the seconds each took to exit.

    SIGTERM goes to each component's main process only — Airflow and Celery shut their own
    children down in order (a Celery worker finishes its running tasks: a warm shutdown);
    signalling the whole group would kill pool processes under their parent. Every
    component gets SIGTERM before any wait, so shutdowns overlap; whatever is still alive
    after ``grace`` seconds in all, and any orphan left in a group, gets SIGKILL.
    """
    started = time.monotonic()
    for component in components:
        if component.process.poll() is None:
            component.process.send_signal(signal.SIGTERM)
    deadline = started + grace
    exited: dict[str, float] = {}
    for component in components:
        with contextlib.suppress(subprocess.TimeoutExpired):
            component.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            exited[component.name] = time.monotonic() - started
    for component in components:
        _signal_group(component.process, signal.SIGKILL)
        if component.process.poll() is None:
            component.process.wait(timeout=10)
        exited.setdefault(component.name, time.monotonic() - started)
        component._log.close()
    return exited
