"""The embedded Airflow's services for a person at a browser: API server (the UI),
scheduler, DAG processor and triggerer, on the embedded home and the project's DAGs.

:class:`AirflowServices` starts the four ``airflow`` processes with the embedded
environment (:func:`pipelines.orchestration.airflow_env.airflow_environment`: the repo's
``dags/``, ``load_examples`` off, the vendor connections), each in its own session with
its output in ``<home>/logs/services/<name>.log`` (the terminal keeps only the CLI's
lines), waits for the API's health endpoint, and stops them all (SIGTERM, then SIGKILL).
Standard library only: Airflow runs in the child processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

from pipelines.errors import AlphaFactoryError
from pipelines.orchestration.airflow_env import AirflowEnv, airflow_bin, ensure_airflow_db

#: The services, in start order; the API server first (the others report to it).
SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")
#: Airflow's simple auth manager: the user the embedded home is given (``user:role``).
ADMIN_USER = "admin"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"
HEALTH_PATH = "/api/v2/monitor/health"


class AirflowServiceError(AlphaFactoryError, RuntimeError):
    """An Airflow service exited, or the API did not become healthy in time."""


def services_environment(env: AirflowEnv, host: str, port: int) -> dict[str, str]:
    """The services' process environment: ``env`` plus where the API listens (the
    scheduler's tasks reach the execution API there) and the admin user."""
    base = f"http://{host}:{port}"
    return {
        **env.process_env(),
        "AIRFLOW__API__HOST": host,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": base,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
    }


@dataclass
class AirflowServices:
    """The four services of ``env`` with the API on ``host:port``; a context manager."""

    env: AirflowEnv
    host: str = "127.0.0.1"
    port: int = 8080
    services: tuple[str, ...] = SERVICES
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, init=False)
    _logs: list[IO[bytes]] = field(default_factory=list, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log_dir(self) -> Path:
        return self.env.home / "logs" / "services"

    @property
    def passwords_file(self) -> Path:
        """Where the simple auth manager writes the generated admin password."""
        return self.env.home / PASSWORDS_FILE

    def admin_password(self) -> str | None:
        try:
            value = json.loads(self.passwords_file.read_text()).get(ADMIN_USER)
        except (OSError, ValueError):
            return None
        return str(value) if value else None

    def start(self) -> None:
        """Migrate the DB if needed, then start every service (not waiting for them)."""
        ensure_airflow_db(self.env)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        child_env = services_environment(self.env, self.host, self.port)
        for name in self.services:
            args = [airflow_bin(), name]
            if name == "api-server":
                args += ["--host", self.host, "--port", str(self.port)]
            log = (self.log_dir / f"{name}.log").open("ab")
            self._logs.append(log)
            self.processes[name] = subprocess.Popen(
                args,
                env=child_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the CLI, which stops them in order
            )

    def exited(self) -> dict[str, int]:
        """Services that have exited, with their exit codes."""
        return {
            name: code for name, proc in self.processes.items() if (code := proc.poll()) is not None
        }

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + HEALTH_PATH, timeout=5) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_healthy(self, timeout: float = 300.0) -> None:
        """Wait until the API answers its health endpoint; raise if a service exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if dead := self.exited():
                name, code = next(iter(dead.items()))
                raise AirflowServiceError(
                    f"airflow {name} exited with code {code}; see {self.log_dir / name}.log"
                )
            if self.healthy():
                return
            time.sleep(1.0)
        raise AirflowServiceError(
            f"the Airflow API at {self.url} was not healthy after {timeout:.0f} s; "
            f"see {self.log_dir}/api-server.log"
        )

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM every service's process group, in reverse start order; SIGKILL what is
        still running after ``timeout``."""
        for proc in reversed(self.processes.values()):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        for proc in self.processes.values():  # workers a service left behind in its group
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        for log in self._logs:
            log.close()
        self._logs.clear()

    def __enter__(self) -> AirflowServices:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
