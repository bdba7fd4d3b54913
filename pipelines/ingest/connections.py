"""The vendor's Airflow connections (``sftp_vendor``, ``http_vendor``) computed from settings.

Inside Airflow the connections come from Airflow (the embedded environment or the
deployment's secrets); outside it (CLI, tests) :func:`ensure_vendor_connections` defaults
them from settings. :mod:`pipelines.orchestration.airflow_env` puts the same values into
the embedded Airflow's environment.

Standard library and settings only at top level: DAG-side code imports this cheaply.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.config import Settings, get_settings

SFTP_CONN_ID = "sftp_vendor"
HTTP_CONN_ID = "http_vendor"
MASK = "***"


@dataclass(frozen=True)
class VendorConnections:
    """``AIRFLOW_CONN_*`` variables: ``values`` carry credentials, ``redacted`` do not."""

    values: dict[str, str] = field(repr=False)
    redacted: dict[str, str] = field(repr=False)


def simulator_host_key(vendor_state_dir: Path) -> str | None:
    """``ssh-ed25519 AAAA…`` of the vendor simulator's host key, if it has been generated."""
    key_file = vendor_state_dir / "ssh_host_ed25519_key"
    if not key_file.is_file():
        return None
    import paramiko  # only when pinning: it is not needed to compute the rest

    key = paramiko.Ed25519Key.from_private_key_file(str(key_file))
    return f"{key.get_name()} {key.get_base64()}"


def vendor_connections(
    settings: Settings | None = None,
    *,
    vendor_host_key: str | None = None,
    vendor_state_dir: Path | None = None,
    vendor_username: str = "vendor",
) -> VendorConnections:
    """The two vendor connections as Airflow connection JSON (pure: reads files only).

    * ``AIRFLOW_CONN_SFTP_VENDOR`` carries the vendor's SSH host key in its extras:
      ``host_key`` is ``vendor_host_key`` (an OpenSSH ``type base64`` line), else the
      setting ``ALPHAFACTORY_VENDOR_HOST_KEY``, else — only when a caller names the
      simulator's state directory (the embedded demo pins its own simulator) — the key
      generated there; ``known_hosts`` is ``ALPHAFACTORY_VENDOR_KNOWN_HOSTS`` made absolute.
      Without either the connection has no host key and
      :class:`~pipelines.ingest.sources.SFTPHookSource` refuses to connect; nothing is ever
      read relative to the working directory and ``no_host_key_check`` is never set.
    * ``AIRFLOW_CONN_HTTP_VENDOR`` carries ``Authorization: Bearer <token>`` as an extra,
      which ``HttpHook`` sends as a header on every request.
    """
    s = settings or get_settings()
    host_key = vendor_host_key or s.vendor_host_key
    if not host_key and vendor_state_dir is not None:
        host_key = simulator_host_key(vendor_state_dir.expanduser().resolve())
    sftp_extra: dict[str, Any] = {"look_for_keys": "false", "conn_timeout": 30}
    if host_key:
        sftp_extra["host_key"] = host_key.strip()
    if s.vendor_known_hosts:
        sftp_extra["known_hosts"] = str(Path(s.vendor_known_hosts).expanduser().resolve())
    sftp = {
        "conn_type": "sftp",
        "host": s.vendor_host,
        "port": s.vendor_sftp_port,
        "login": vendor_username,
        "password": s.vendor_password.get_secret_value(),
        "extra": sftp_extra,
    }
    http = {
        "conn_type": "http",
        "host": s.vendor_host,
        "port": s.vendor_http_port,
        "schema": "http",
        "extra": {"Authorization": f"Bearer {s.vendor_token.get_secret_value()}"},
    }
    sftp_name = f"AIRFLOW_CONN_{SFTP_CONN_ID.upper()}"
    http_name = f"AIRFLOW_CONN_{HTTP_CONN_ID.upper()}"
    return VendorConnections(
        values={sftp_name: json.dumps(sftp), http_name: json.dumps(http)},
        redacted={
            sftp_name: json.dumps({**sftp, "password": MASK}),
            http_name: json.dumps({**http, "extra": {"Authorization": f"Bearer {MASK}"}}),
        },
    )


def ensure_vendor_connections() -> None:
    """Default the ``AIRFLOW_CONN_*`` vendor connections from settings when not set.

    Inside Airflow the connections come from Airflow; outside (CLI, tests) the embedded
    defaults are used unless the environment already names a connection. A masked copy of
    the default (``***`` for the secrets, as an older ``alphafactory airflow env`` printed
    it) is not a connection anyone meant: it is replaced too.
    """
    conns = vendor_connections()
    for key, value in conns.values.items():
        if key not in os.environ or os.environ[key] == conns.redacted[key]:
            os.environ[key] = value
