"""One place for configuration: environment variables prefixed ``ALPHAFACTORY_``.

Credentials never live here as literals: S3 keys come from the standard AWS
environment variables (or an Airflow connection inside tasks) and are passed
through ``storage_options`` without being logged.
"""

from __future__ import annotations

import datetime as dt
import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: When set, where a browser reaches the reports directory (``<lake root>/reports``) over
#: HTTP(S): a web server or bucket website publishing it. The PM report's approval link and
#: the Data Docs links read it at call time (not a :class:`Settings` field, so a task or
#: test that sets it sees it at once).
REPORTS_URL_ENV = "ALPHAFACTORY_REPORTS_URL"
#: OpenBLAS's thread count, set to 1 by our entry points (the CLI, Airflow's tasks) unless
#: the user set it: our BLAS work is on K×K and N×K matrices (K ≈ 40), where OpenBLAS's
#: worker threads only wake and spin on the shared cores. Measured on the 2-core machine:
#: the 40×40 factor covariance's eigh 12.9 → 0.18 ms CPU, a 500-name backtest session
#: 1.37 → 1.15 CPU-s. It must be set before numpy is first imported.
BLAS_THREADS_ENV = "OPENBLAS_NUM_THREADS"


class Settings(BaseSettings):
    """Runtime settings; every field maps to ``ALPHAFACTORY_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="ALPHAFACTORY_", env_file=".env", extra="ignore")

    lake_root: str = Field(default="./var/lake", description="Local path or s3://bucket/prefix")
    s3_endpoint_url: str | None = Field(default=None, description="S3-compatible endpoint")
    s3_region: str = "us-east-1"
    s3_allow_http: bool = False
    airflow_home: str = "./var/airflow"
    # Production mode (pipelines/orchestration/production.py); the embedded run ignores these.
    airflow_db_url: SecretStr | None = Field(
        default=None, description="PostgreSQL metadata DB (SQLAlchemy URL) for production mode"
    )
    celery_broker_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    celery_result_backend: SecretStr | None = Field(
        default=None, description="Celery result backend; default db+<airflow_db_url>"
    )
    airflow_api_url: str = Field(
        default="http://127.0.0.1:8080", description="API server base URL as workers reach it"
    )
    airflow_queue: str = "default"
    worker_name: str | None = Field(
        default=None, description="Host name a worker reports (several workers on one host)"
    )
    calendar: str = "XNYS"
    # pipelines/timeline.py: the calendar covers calendar_start .. end of (this year + 2);
    # the cutoffs are wall-clock times in the exchange's time zone.
    calendar_start: dt.date = dt.date(1990, 1, 1)
    decision_cutoff: dt.time = Field(
        default=dt.time(20, 0), description="session knowledge cutoff (exchange local time)"
    )
    run_time: dt.time = Field(
        default=dt.time(19, 0), description="when the daily DAGs start (exchange local time)"
    )
    feature_paths: str = Field(
        default="", description="extra feature directories (.py and .sql), os.pathsep-separated"
    )
    daily_config: str | None = Field(
        default=None, description="daily loop config YAML (default: production.yaml)"
    )
    backtest_retrain_workers: int | None = Field(
        default=None,
        description="worker processes fitting a backtest's retrains ahead of its sessions "
        "(0: in the run's process; default: 1 on a machine with 2+ cores)",
    )
    universe_size: int = 500
    seed: int = 7
    history_years: float = 3.0
    # The simulated vendor's history: ``history_start .. history_end`` when set, else
    # ``history_years`` back from ``history_end`` (default: 31 December of this year, so
    # `make demo` and `vendor serve` build the same market all year).
    history_start: dt.date | None = Field(
        default=None, description="first simulated date (overrides history_years)"
    )
    history_end: dt.date | None = Field(
        default=None, description="last simulated date [31 Dec this year]"
    )
    ingest_deadline_seconds: float = Field(
        default=4 * 3600, description="how long an SFTP sensor waits for a session's files"
    )
    ingest_poke_seconds: float = Field(default=60, description="seconds between two looks")
    feeds_dir: str | None = Field(
        default=None, description="extra feed YAML directories (os.pathsep-separated)"
    )
    contract_path: str = Field(
        default="",
        description="user data contract folders (os.pathsep-separated), searched in order "
        "before the shipped data_contracts/",
    )
    shipped_feeds: bool = Field(
        default=True,
        description="declare the vendor simulator's feeds shipped in pipelines/ingest/feeds/ "
        "(false: only the feeds of feeds_dir, for a deployment on its own vendor)",
    )
    vacuum_retention_hours: int = Field(default=168, ge=168)
    checkpoint_interval: int = 20
    vendor_host: str = "127.0.0.1"
    vendor_sftp_port: int = 2222
    vendor_http_port: int = 8089
    vendor_password: SecretStr = SecretStr("vendor-dev-password")
    vendor_token: SecretStr = SecretStr("vendor-dev-token")
    vendor_host_key: str | None = Field(
        default=None,
        description="the vendor SFTP server's public host key, OpenSSH `type base64` "
        "(pinned in the sftp_vendor connection's extras)",
    )
    vendor_known_hosts: str | None = Field(
        default=None,
        description="a known_hosts file holding the vendor SFTP server's host key "
        "(alternative to vendor_host_key; made absolute)",
    )

    @property
    def is_s3(self) -> bool:
        return self.lake_root.startswith("s3://")

    def storage_options(self) -> dict[str, str]:
        """Options for deltalake/object_store; empty for the local filesystem.

        Keys are read from the process environment at call time so that they
        are never copied into settings dumps or logs.
        """
        if not self.is_s3:
            return {}
        opts: dict[str, str] = {
            "AWS_REGION": self.s3_region,
            # Safe concurrent commits on S3: conditional put (If-None-Match) instead of
            # an unsafe rename; no external lock service needed.
            "conditional_put": "etag",
        }
        if self.s3_endpoint_url:
            opts["AWS_ENDPOINT_URL"] = self.s3_endpoint_url
        if self.s3_allow_http:
            opts["AWS_ALLOW_HTTP"] = "true"
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            if os.environ.get(var):
                opts[var] = os.environ[var]
        return opts

    def local_root(self) -> Path:
        """The lake root as a local path (only valid when not on S3)."""
        if self.is_s3:
            raise ValueError("lake root is on S3; no local path")
        return Path(self.lake_root).expanduser().resolve()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings (cached; tests clear with ``get_settings.cache_clear()``)."""
    return Settings()
