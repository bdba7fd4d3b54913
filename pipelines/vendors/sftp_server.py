"""Read-only SFTP server (asyncssh) over the simulator's virtual daily folders.

Layout: ``/daily/YYYY-MM-DD/{prices.csv.gz, corporate_actions.csv.gz,
security_master.csv.gz, [prices_correction_<D>.csv.gz], manifest.json}``. A day's folder
does not exist at all — not listed, ``stat`` fails — until its publish instant has passed on
the vendor clock, so publication is atomic. Files are rendered on first access (in a worker
thread, so one slow render never stalls other sessions). Every write operation is refused.
"""

from __future__ import annotations

import asyncio
import hmac
import posixpath
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import asyncssh

from pipelines.vendors.clock import Clock
from pipelines.vendors.files import DayFolder
from pipelines.vendors.simulator import MissingDayError, NotSimulatedError, VendorSimulator

DIR_MODE = stat.S_IFDIR | 0o555
FILE_MODE = stat.S_IFREG | 0o444
HOST_KEY_NAME = "ssh_host_ed25519_key"
CLIENT_KEY_NAME = "client_ed25519_key"


@dataclass(frozen=True)
class KeyPaths:
    """Key material in the state dir (generated on first start, reused afterwards)."""

    host_key: Path
    client_key: Path
    client_public_key: Path


def ensure_keys(state_dir: Path) -> KeyPaths:
    """Create the host key and a client key pair in ``state_dir`` if they do not exist."""
    state_dir.mkdir(parents=True, exist_ok=True)
    paths = KeyPaths(
        state_dir / HOST_KEY_NAME,
        state_dir / CLIENT_KEY_NAME,
        state_dir / f"{CLIENT_KEY_NAME}.pub",
    )
    if not paths.host_key.exists():
        asyncssh.generate_private_key("ssh-ed25519").write_private_key(paths.host_key)
        paths.host_key.chmod(0o600)
    if not paths.client_key.exists():
        key = asyncssh.generate_private_key("ssh-ed25519", comment="alphafactory-vendor-client")
        key.write_private_key(paths.client_key)
        paths.client_key.chmod(0o600)
        key.write_public_key(paths.client_public_key)
    return paths


class VendorSSHServer(asyncssh.SSHServer):
    """Auth policy: one user, by password or by an authorized public key."""

    def __init__(
        self,
        username: str,
        password: str,
        authorized: list[asyncssh.SSHKey],
        connections: set[asyncssh.SSHServerConnection],
    ) -> None:
        self._username = username
        self._password = password
        self._authorized = {k.public_data for k in authorized}
        self._connections = connections
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._connections.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        return True  # always require authentication

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        ok_user = hmac.compare_digest(username.encode(), self._username.encode())
        return ok_user & hmac.compare_digest(password.encode(), self._password.encode())

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        # asyncssh verifies the client's signature itself; we only decide authorization.
        return username == self._username and key.public_data in self._authorized


@dataclass(frozen=True)
class _OpenFile:
    data: bytes
    mtime: int


class VendorSFTPServer(asyncssh.SFTPServer):
    """Virtual, read-only file system view of the simulator at the vendor clock's "now"."""

    def __init__(self, chan: asyncssh.SSHServerChannel, sim: VendorSimulator, clock: Clock):
        super().__init__(chan)
        self._sim = sim
        self._clock = clock

    # --- path resolution ------------------------------------------------------------------

    @staticmethod
    def _norm(path: bytes) -> str:
        return posixpath.normpath(posixpath.join("/", path.decode("utf-8", "replace")))

    def _visible_day(self, name: str) -> date:
        try:
            day = date.fromisoformat(name)
        except ValueError:
            raise asyncssh.SFTPNoSuchFile(name) from None
        if not self._sim.is_published(day, self._clock.now()):
            raise asyncssh.SFTPNoSuchFile(name)
        return day

    async def _folder(self, day: date) -> DayFolder:
        try:
            return await asyncio.get_running_loop().run_in_executor(None, self._sim.day_folder, day)
        except (MissingDayError, NotSimulatedError):
            raise asyncssh.SFTPNoSuchFile(day.isoformat()) from None

    def _dir_attrs(self, mtime: int = 0) -> asyncssh.SFTPAttrs:
        return asyncssh.SFTPAttrs(
            type=asyncssh.FILEXFER_TYPE_DIRECTORY,
            permissions=DIR_MODE,
            size=0,
            mtime=mtime,
            atime=mtime,
        )

    @staticmethod
    def _file_attrs(size: int, mtime: int) -> asyncssh.SFTPAttrs:
        return asyncssh.SFTPAttrs(
            type=asyncssh.FILEXFER_TYPE_REGULAR,
            permissions=FILE_MODE,
            size=size,
            mtime=mtime,
            atime=mtime,
        )

    async def _stat(self, path: bytes) -> asyncssh.SFTPAttrs:
        parts = [p for p in self._norm(path).split("/") if p]
        if len(parts) == 0 or parts == ["daily"]:
            return self._dir_attrs()
        if parts[0] != "daily" or len(parts) > 3:
            raise asyncssh.SFTPNoSuchFile(self._norm(path))
        day = self._visible_day(parts[1])
        folder = await self._folder(day)
        if len(parts) == 2:
            return self._dir_attrs(int(folder.published_at.timestamp()))
        name = parts[2]
        if name not in folder.files:
            raise asyncssh.SFTPNoSuchFile(self._norm(path))
        return self._file_attrs(len(folder.files[name]), folder.mtime(name))

    # --- read-only operations ---------------------------------------------------------------

    def realpath(self, path: bytes) -> bytes:
        return self._norm(path).encode()

    async def stat(self, path: bytes) -> asyncssh.SFTPAttrs:
        return await self._stat(path)

    async def lstat(self, path: bytes) -> asyncssh.SFTPAttrs:
        return await self._stat(path)

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        norm = self._norm(path)
        parts = [p for p in norm.split("/") if p]
        await self._stat(path)  # raises for invisible/unknown paths
        yield asyncssh.SFTPName(b".", attrs=self._dir_attrs())
        yield asyncssh.SFTPName(b"..", attrs=self._dir_attrs())
        if not parts:
            yield asyncssh.SFTPName(b"daily", attrs=self._dir_attrs())
        elif parts == ["daily"]:
            for day in self._sim.visible_days(self._clock.now()):
                mtime = int(self._sim.publish_at(day).timestamp())  # type: ignore[union-attr]
                yield asyncssh.SFTPName(day.isoformat().encode(), attrs=self._dir_attrs(mtime))
        elif len(parts) == 2:
            folder = await self._folder(self._visible_day(parts[1]))
            for name, data in folder.files.items():
                attrs = self._file_attrs(len(data), folder.mtime(name))
                yield asyncssh.SFTPName(name.encode(), attrs=attrs)
        else:
            raise asyncssh.SFTPNotADirectory(norm)

    async def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> _OpenFile:
        if pflags & (
            asyncssh.FXF_WRITE | asyncssh.FXF_APPEND | asyncssh.FXF_CREAT | asyncssh.FXF_TRUNC
        ):
            raise asyncssh.SFTPPermissionDenied("read-only vendor share")
        parts = [p for p in self._norm(path).split("/") if p]
        if len(parts) != 3 or parts[0] != "daily":
            raise asyncssh.SFTPNoSuchFile(self._norm(path))
        folder = await self._folder(self._visible_day(parts[1]))
        if parts[2] not in folder.files:
            raise asyncssh.SFTPNoSuchFile(self._norm(path))
        return _OpenFile(folder.files[parts[2]], folder.mtime(parts[2]))

    def read(self, file_obj: object, offset: int, size: int) -> bytes:
        assert isinstance(file_obj, _OpenFile)
        return file_obj.data[offset : offset + size]

    def fstat(self, file_obj: object) -> asyncssh.SFTPAttrs:
        assert isinstance(file_obj, _OpenFile)
        return self._file_attrs(len(file_obj.data), file_obj.mtime)

    def close(self, file_obj: object) -> None:
        return None

    # --- everything that would modify the share is refused --------------------------------

    def _deny(self, *_: object) -> None:
        raise asyncssh.SFTPPermissionDenied("read-only vendor share")

    write = _deny  # type: ignore[assignment]
    remove = _deny  # type: ignore[assignment]
    mkdir = _deny  # type: ignore[assignment]
    rmdir = _deny  # type: ignore[assignment]
    rename = _deny  # type: ignore[assignment]
    posix_rename = _deny  # type: ignore[assignment]
    setstat = _deny  # type: ignore[assignment]
    lsetstat = _deny  # type: ignore[assignment]
    fsetstat = _deny  # type: ignore[assignment]
    symlink = _deny  # type: ignore[assignment]
    link = _deny  # type: ignore[assignment]


async def start_sftp_server(
    sim: VendorSimulator,
    clock: Clock,
    *,
    host: str,
    port: int,
    username: str,
    password: str,
    keys: KeyPaths,
    extra_authorized: tuple[Path, ...] = (),
) -> tuple[asyncssh.SSHAcceptor, set[asyncssh.SSHServerConnection]]:
    """Start listening; returns the acceptor and the live-connection set (for shutdown)."""
    authorized = [asyncssh.read_public_key(keys.client_public_key)]
    for path in extra_authorized:
        authorized.extend(asyncssh.read_public_key_list(path))
    connections: set[asyncssh.SSHServerConnection] = set()
    acceptor = await asyncssh.listen(
        host,
        port,
        server_factory=lambda: VendorSSHServer(username, password, authorized, connections),
        server_host_keys=[str(keys.host_key)],
        sftp_factory=lambda chan: VendorSFTPServer(chan, sim, clock),
        allow_scp=False,
    )
    return acceptor, connections
