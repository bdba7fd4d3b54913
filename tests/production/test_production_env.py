"""The production-mode environment builder: pure, fast checks (no Airflow, no servers)."""

from __future__ import annotations

import json
import socket
import stat
from pathlib import Path

import pytest

from pipelines.config import Settings, get_settings
from pipelines.orchestration.production import (
    ADMIN_USER,
    ProductionSecrets,
    component_command,
    prepare_production_home,
    production_environment,
    redact_url,
    worker_hostname,
)

pytestmark = pytest.mark.unit

DB = "postgresql+psycopg2://airflow:s3cret@db.internal:5432/airflow"


def _env(tmp_path: Path, **kwargs: object):
    settings = Settings(airflow_home=str(tmp_path / "home"))
    return production_environment(
        settings,
        secrets=ProductionSecrets.generate(),
        db_url=DB,
        vendor_state_dir=tmp_path / "no-vendor",
        **kwargs,  # type: ignore[arg-type]
    )


def test_celery_postgres_and_shared_secrets(tmp_path: Path) -> None:
    env = _env(tmp_path, api_url="http://api.internal:9090/", queue="q1")
    v = env.values
    assert v["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert v["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == DB
    assert v["AIRFLOW__CELERY__RESULT_BACKEND"] == f"db+{DB}"
    assert v["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:6379/0"  # the setting's default
    assert v["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://api.internal:9090/execution/"
    assert v["AIRFLOW__API__PORT"] == "9090"
    assert v["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] == "q1"
    for name in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
        assert len(v[name]) >= 32
    # The embedded parts are kept: home, DAG folder, vendor connections.
    assert v["AIRFLOW_HOME"] == str((tmp_path / "home").resolve())
    assert "AIRFLOW_CONN_SFTP_VENDOR" in v and "AIRFLOW_CONN_HTTP_VENDOR" in v


def test_secrets_are_masked(tmp_path: Path) -> None:
    env = _env(tmp_path)
    shown = "\n".join(env.export_lines())
    for name in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__FERNET_KEY"):
        assert env.values[name] not in shown
    assert "s3cret" not in shown
    assert redact_url(DB) in shown and "***" in redact_url(DB)
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert "s3cret" not in repr(env) and "s3cret" not in repr(ProductionSecrets.generate())


def test_settings_supply_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHAFACTORY_AIRFLOW_DB_URL", DB)
    monkeypatch.setenv("ALPHAFACTORY_CELERY_BROKER_URL", "redis://redis:6379/3")
    monkeypatch.setenv("ALPHAFACTORY_AIRFLOW_QUEUE", "research")
    get_settings.cache_clear()
    env = production_environment(secrets=ProductionSecrets.generate())
    assert env.values["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == DB
    assert env.values["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/3"
    assert env.values["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] == "research"


def test_a_postgres_url_is_required(tmp_path: Path) -> None:
    settings = Settings(airflow_home=str(tmp_path))
    with pytest.raises(ValueError, match="ALPHAFACTORY_AIRFLOW_DB_URL"):
        production_environment(settings, secrets=ProductionSecrets.generate())
    with pytest.raises(ValueError, match="must be PostgreSQL"):
        production_environment(
            settings, secrets=ProductionSecrets.generate(), db_url="sqlite:////tmp/a.db"
        )


def test_secrets_file_is_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "deploy" / "secrets.json"
    first = ProductionSecrets.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ProductionSecrets.load_or_create(path) == first


def test_home_gets_the_admin_password_file(tmp_path: Path) -> None:
    secrets = ProductionSecrets.generate()
    env = production_environment(
        Settings(airflow_home=str(tmp_path / "home")), secrets=secrets, db_url=DB
    )
    prepare_production_home(env, secrets)
    prepare_production_home(env, secrets)  # idempotent
    path = Path(env.values["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    assert json.loads(path.read_text()) == {ADMIN_USER: secrets.admin_password}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_component_commands(tmp_path: Path) -> None:
    env = _env(tmp_path, api_url="http://127.0.0.1:8123", queue="q1")
    assert component_command("scheduler", env)[1:] == ["scheduler"]
    assert component_command("dag-processor", env)[1:] == ["dag-processor"]
    assert component_command("api-server", env)[1:] == [
        "api-server",
        "--host",
        "127.0.0.1",
        "--port",
        "8123",
    ]
    worker = component_command("celery-worker", env, worker_name="w1", concurrency=3)
    assert worker[1:] == [
        "celery",
        "worker",
        "--queues",
        "q1",
        "--concurrency",
        "3",
        "--celery-hostname",
        "w1@%h",
    ]
    assert "--skip-serve-logs" in component_command("celery-worker", env, serve_logs=False)


def test_worker_hostname(monkeypatch: pytest.MonkeyPatch) -> None:
    assert worker_hostname() == socket.getfqdn()
    monkeypatch.setenv("ALPHAFACTORY_WORKER_NAME", "worker-7")
    get_settings.cache_clear()
    assert worker_hostname() == "worker-7"
