"""Where vendor bytes come from: small interfaces with live and in-process implementations.

The live implementations use Airflow's own hooks — :class:`SFTPHook` from the SFTP
provider and :class:`HttpHook` from the HTTP provider — configured by the Airflow
connections ``sftp_vendor`` and ``http_vendor``. They are imported lazily so the library
stays importable (and its unit tests fast) without touching Airflow.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pipelines.errors import AlphaFactoryError

log = logging.getLogger(__name__)


class FileSource(Protocol):
    """A vendor file drop (SFTP or in-process)."""

    def session(self) -> AbstractContextManager[FileSession]:
        """An open connection for a batch of reads."""
        ...


class FileSession(Protocol):
    def list_dir(self, path: str) -> list[str] | None:
        """Entry names in ``path``, or None when the folder does not exist (yet)."""
        ...

    def read(self, path: str) -> bytes:
        """The bytes of a remote file."""
        ...

    def mtime(self, path: str) -> dt.datetime:
        """A remote file's modification time (UTC), for ``known_at: file_mtime`` feeds."""
        ...


@dataclass
class _SFTPSession:
    sftp: Any  # paramiko.SFTPClient

    def list_dir(self, path: str) -> list[str] | None:
        try:
            return sorted(self.sftp.listdir(path))
        except OSError:  # FileNotFoundError from paramiko for a missing folder
            return None

    def read(self, path: str) -> bytes:
        with self.sftp.open(path, "rb") as fh:
            fh.prefetch()
            data: bytes = fh.read()
            return data

    def mtime(self, path: str) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.sftp.stat(path).st_mtime, dt.UTC)


class HostKeyError(AlphaFactoryError, ConnectionError):
    """An SFTP connection without a verifiable host key, or the server's key changed:
    refused before any credential is sent."""


def _known_host_key(path: str, host: str, port: int, conn_id: str) -> Any:
    """The host key for ``host:port`` in the known_hosts file ``path`` (a paramiko PKey)."""
    import paramiko

    p = Path(path)
    if not p.is_absolute():
        raise HostKeyError(
            f"connection {conn_id}: known_hosts {path!r} is a relative path; "
            "give an absolute path (it must not depend on the working directory)"
        )
    try:
        keys = paramiko.HostKeys(str(p))
    except (OSError, paramiko.SSHException) as exc:
        raise HostKeyError(f"connection {conn_id}: cannot read known_hosts {p}: {exc}") from exc
    name = host if port == 22 else f"[{host}]:{port}"
    found = keys.lookup(name)
    if not found:
        raise HostKeyError(
            f"connection {conn_id}: no host key for {name} in {p}; refusing to connect"
        )
    return next(iter(found.values()))


def verified_sftp_hook(conn_id: str) -> Any:
    """Airflow's ``SFTPHook`` for ``conn_id``, only if its connection pins the host key.

    The connection's extras must carry ``host_key`` (OpenSSH ``type base64``) or
    ``known_hosts`` (an absolute path holding ``[host]:port``'s key);
    ``no_host_key_check`` and ``allow_host_key_change`` are refused. The pinned key is the
    only one accepted (the default missing-key policy rejects any other), so a changed
    server key fails the handshake before authentication: no password is sent.
    """
    from airflow.providers.sftp.hooks.sftp import SFTPHook

    hook = SFTPHook(ssh_conn_id=conn_id)
    extra = hook.get_connection(conn_id).extra_dejson
    if hook.no_host_key_check or str(extra.get("no_host_key_check", "")).lower() == "true":
        raise HostKeyError(
            f"connection {conn_id} sets no_host_key_check; host keys are always verified: "
            "put host_key or known_hosts in its extras"
        )
    if hook.allow_host_key_change:
        raise HostKeyError(f"connection {conn_id} sets allow_host_key_change; remove it")
    if hook.host_key is None:
        known_hosts = extra.get("known_hosts")
        if not known_hosts:
            raise HostKeyError(
                f"connection {conn_id} has no host key: put host_key (OpenSSH `type base64`) "
                "or known_hosts (an absolute path) in its extras; refusing to connect"
            )
        hook.host_key = _known_host_key(
            str(known_hosts), hook.remote_host, hook.port or 22, conn_id
        )
    return hook


@dataclass(frozen=True)
class SFTPHookSource:
    """Files over SFTP through Airflow's ``SFTPHook`` and the ``conn_id`` connection, whose
    host key must be pinned (:func:`verified_sftp_hook`)."""

    conn_id: str = "sftp_vendor"

    @contextmanager
    def session(self) -> Iterator[_SFTPSession]:
        import paramiko

        hook = verified_sftp_hook(self.conn_id)
        try:
            managed = hook.get_managed_conn()
            sftp = managed.__enter__()
        except paramiko.BadHostKeyException as exc:
            raise HostKeyError(
                f"connection {self.conn_id}: the host key of {hook.remote_host}:{hook.port} "
                f"changed (offered {exc.key.get_name()} {exc.key.get_base64()[:16]}…, pinned "
                f"{exc.expected_key.get_base64()[:16]}…); refusing to connect, no credential sent"
            ) from None
        except paramiko.SSHException as exc:
            if "known_hosts" in str(exc) or "host key" in str(exc).lower():
                raise HostKeyError(
                    f"connection {self.conn_id}: {exc}; refusing to connect"
                ) from None
            raise
        try:
            yield _SFTPSession(sftp)
        finally:
            managed.__exit__(None, None, None)


class RecordSource(Protocol):
    """A vendor REST dataset paged by publication time."""

    def fetch(
        self, endpoint: str, since: dt.datetime | None, until: dt.datetime, page_size: int
    ) -> list[dict[str, Any]]:
        """Every record with ``since < published_at <= until``, in publication order."""
        ...


def _parse_instant(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _iso(ts: dt.datetime) -> str:
    return ts.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class HttpHookSource:
    """Records over REST through Airflow's ``HttpHook`` and the ``conn_id`` connection.

    The session retries 429 and 5xx with exponential backoff and honours ``Retry-After``
    (urllib3's ``Retry``). The bearer token comes from the connection (password field,
    or an ``Authorization`` header in its extras); it is never logged.
    """

    conn_id: str = "http_vendor"
    retries: int = 8
    backoff: float = 0.2
    timeout: float = 30.0
    #: Retried responses of the last :meth:`fetch` by HTTP status (e.g. ``{429: 3, 503: 1}``).
    retried: dict[int, int] = field(default_factory=dict, init=False)

    def _session(self) -> tuple[Any, str]:
        from airflow.providers.http.hooks.http import HttpHook
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        hook = HttpHook(method="GET", http_conn_id=self.conn_id)
        session = hook.get_conn()
        conn = hook.get_connection(self.conn_id)
        if conn.password and "Authorization" not in session.headers:
            session.headers["Authorization"] = f"Bearer {conn.password}"
        retry = Retry(
            total=self.retries,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=frozenset({"GET"}),
            backoff_factor=self.backoff,
            respect_retry_after_header=True,
            raise_on_status=True,
        )
        adapter = HTTPAdapter(max_retries=retry)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session, str(hook.base_url).rstrip("/")

    def fetch(
        self, endpoint: str, since: dt.datetime | None, until: dt.datetime, page_size: int
    ) -> list[dict[str, Any]]:
        session, base = self._session()
        params: dict[str, Any] = {"page_size": page_size}
        if since is not None:
            params["since"] = _iso(since)
        out: list[dict[str, Any]] = []
        pages = 0
        started = time.monotonic()
        self.retried = {}
        while True:
            resp = session.get(f"{base}{endpoint}", params=params, timeout=self.timeout)
            # urllib3 keeps what it retried on the response: count it for the log.
            for attempt in getattr(getattr(resp.raw, "retries", None), "history", ()) or ():
                if attempt.status is not None:
                    self.retried[attempt.status] = self.retried.get(attempt.status, 0) + 1
            resp.raise_for_status()
            body = resp.json()
            pages += 1
            done = False
            for rec in body["data"]:
                if _parse_instant(rec["published_at"]) > until:
                    done = True
                    break
                out.append(rec)
            token = body.get("next_page_token")
            if done or not token:
                break
            params = {"page_token": token, "page_size": page_size}
        log.info(
            "fetched %d records from %s in %d pages (%.1fs, retried by status: %s)",
            len(out),
            endpoint,
            pages,
            time.monotonic() - started,
            self.retried or "none",
        )
        return out


#: One encoder for every record (``json.dumps`` with options builds a new one per call).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def records_to_jsonl(records: list[dict[str, Any]]) -> bytes:
    """Canonical bytes of a record list (sorted keys), so equal content has equal sha256."""
    if not records:
        return b""
    return ("\n".join(map(_CANONICAL.encode, records)) + "\n").encode()


class VendorUnreachable(AlphaFactoryError, ConnectionError):
    """Nothing answers at a vendor connection's host and port (refused, or no answer within
    the connect timeout): said in one line before any retrying transfer starts."""


#: The embedded simulator's connections: when they cannot be reached, say how to start it.
SIMULATOR_CONN_IDS = frozenset({"sftp_vendor", "http_vendor"})


def connection_address(conn_id: str) -> tuple[str, int]:
    """``(host, port)`` of an Airflow connection (port defaulted by its type: SFTP 22,
    HTTP 80, HTTPS 443)."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    if conn.port:
        return str(conn.host), int(conn.port)
    https = (conn.schema or "").lower() == "https" or str(conn.host).startswith("https://")
    default = {"sftp": 22, "ssh": 22}.get(conn.conn_type or "", 443 if https else 80)
    return str(conn.host), default


def check_reachable(conn_ids: list[str], timeout: float = 3.0) -> None:
    """Open (and close) one TCP connection to each connection's ``host:port``, with a short
    connect timeout; raise :class:`VendorUnreachable` for the first that does not answer.

    The transfers retry with backoff (SSH three times, HTTP eight), which is right for a
    vendor that blinks, not for one that is down: this first attempt fails in seconds.
    """
    import socket
    from urllib.parse import urlsplit

    for conn_id in dict.fromkeys(conn_ids):
        host, port = connection_address(conn_id)
        if "://" in host:  # an HTTP connection may carry its scheme in the host
            host = urlsplit(host).hostname or host
        try:
            with socket.create_connection((host, port), timeout=timeout):
                pass
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            hint = (
                "start the simulator: alphafactory vendor serve"
                if conn_id in SIMULATOR_CONN_IDS
                else f"check the connection {conn_id} and the vendor's service"
            )
            raise VendorUnreachable(
                f"vendor unreachable at {host}:{port} (connection {conn_id}: {reason}); {hint}"
            ) from None
