"""Run the SFTP and REST servers in a background thread: ``with run_vendor(cfg) as ep: ...``."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
from aiohttp import web

from pipelines.vendors.config import VendorConfig
from pipelines.vendors.rest_api import create_app
from pipelines.vendors.sftp_server import KeyPaths, ensure_keys, start_sftp_server
from pipelines.vendors.simulator import VendorSimulator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VendorEndpoints:
    """Where and how to reach a running vendor. Credentials are excluded from ``repr``."""

    host: str
    sftp_port: int
    http_port: int
    username: str
    client_key_path: Path
    host_key_path: Path
    host_public_key: str  # OpenSSH one-liner, for known_hosts pinning
    state_dir: Path
    password: str = field(repr=False)
    token: str = field(repr=False)
    simulator: VendorSimulator = field(repr=False, compare=False)

    @property
    def base_url(self) -> str:
        """REST base URL, e.g. ``http://127.0.0.1:8089``."""
        return f"http://{self.host}:{self.http_port}"

    @property
    def known_hosts_line(self) -> str:
        """``[host]:port key`` line for an OpenSSH/paramiko known_hosts file."""
        return f"[{self.host}]:{self.sftp_port} {self.host_public_key}"


class _ServerThread(threading.Thread):
    def __init__(self, cfg: VendorConfig, sim: VendorSimulator, keys: KeyPaths) -> None:
        super().__init__(name="vendor-sim", daemon=True)
        self.cfg, self.sim, self.keys = cfg, sim, keys
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.ports: tuple[int, int] = (0, 0)
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._connections: set[asyncssh.SSHServerConnection] = set()
        self._runner: web.AppRunner | None = None

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._startup())
        except BaseException as exc:  # reported to the starting thread
            self.error = exc
            self.ready.set()
            self.loop.run_until_complete(self._shutdown())
            self.loop.close()
            return
        self.ready.set()
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self._shutdown())
            self.loop.close()

    async def _startup(self) -> None:
        cfg = self.cfg
        self._acceptor, self._connections = await start_sftp_server(
            self.sim,
            cfg.clock,
            host=cfg.host,
            port=cfg.sftp_port,
            username=cfg.username,
            password=cfg.password,
            keys=self.keys,
            extra_authorized=cfg.authorized_key_files,
        )
        app = create_app(
            self.sim,
            token=cfg.token,
            clock=cfg.clock,
            rate_limit=cfg.rate_limit,
            rate_window_seconds=cfg.rate_window_seconds,
            error_rate=cfg.error_rate,
            default_page_size=cfg.default_page_size,
            max_page_size=cfg.max_page_size,
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        # Bind our own socket so port 0 resolves to a known port without private APIs.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((cfg.host, cfg.http_port))
        await web.SockSite(self._runner, sock).start()
        self.ports = (self._acceptor.get_port(), sock.getsockname()[1])

    async def _shutdown(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
            for conn in list(self._connections):
                conn.close()
            await self._acceptor.wait_closed()
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.join(timeout=10)


@contextmanager
def run_vendor(
    config: VendorConfig,
    simulator: VendorSimulator | None = None,
    *,
    warm: bool = True,
    start_timeout: float = 60.0,
) -> Iterator[VendorEndpoints]:
    """Serve ``config`` over SFTP and REST on ``config.host`` until the block exits.

    Generates the host key and a client key pair in ``config.state_dir`` on first start.
    With ``warm``, the market is generated before the servers accept connections, so the
    first request is not slowed down by generation.
    """
    state_dir = Path(config.state_dir)
    keys = ensure_keys(state_dir)
    sim = simulator or VendorSimulator.from_vendor_config(config)
    if warm:
        _ = sim.market, sim.rest_sources
    thread = _ServerThread(config, sim, keys)
    thread.start()
    if not thread.ready.wait(start_timeout):
        thread.stop()
        raise TimeoutError("vendor servers did not start")
    if thread.error is not None:
        thread.join(timeout=10)
        raise RuntimeError("vendor servers failed to start") from thread.error
    sftp_port, http_port = thread.ports
    host_pub = asyncssh.read_private_key(keys.host_key).export_public_key().decode().strip()
    endpoints = VendorEndpoints(
        host=config.host,
        sftp_port=sftp_port,
        http_port=http_port,
        username=config.username,
        client_key_path=keys.client_key,
        host_key_path=keys.host_key,
        host_public_key=host_pub,
        state_dir=state_dir,
        password=config.password,
        token=config.token,
        simulator=sim,
    )
    log.info("vendor up: sftp %s:%d, http %s", config.host, sftp_port, endpoints.base_url)
    try:
        yield endpoints
    finally:
        thread.stop()
