"""OpenSSH's sshd on loopback, for tests that read a vendor's SFTP tree from a real server.

:func:`run_sshd` starts sshd on a free loopback port with a generated host key and a
generated client key, from a generated ``sshd_config`` (no PAM, key auth only,
``internal-sftp``), and stops it on exit. The served tree is :attr:`Sshd.root`; a remote
path is :meth:`Sshd.remote` of a path relative to it:

* started by root, sshd confines the session to the tree (``ChrootDirectory``), so the
  vendor's folders have the absolute remote names a vendor would give them
  (``/outgoing/20240705``);
* otherwise there is no chroot and the remote name carries the tree's local path as a
  prefix (``<root>/outgoing/20240705``).

No pytest here: a test turns :class:`SshdUnavailable` into a skip.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pipelines.net import free_port


class SshdUnavailable(RuntimeError):
    """sshd (or ssh-keygen) is not installed and cannot be installed here."""


def find_sshd() -> str | None:
    """The sshd binary (resolved), or None."""
    found = shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").is_file() else None)
    return str(Path(found).resolve()) if found else None


def install_sshd() -> str | None:
    """Install Debian's openssh-server when root (as ``.ci/system-deps.sh`` does)."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "openssh-server"]
    if subprocess.run(install, env=env, capture_output=True, timeout=600).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        subprocess.run(install, env=env, capture_output=True, timeout=600)
    return find_sshd()


def keygen(path: Path) -> str:
    """Generate an ed25519 key pair at ``path`` (no passphrase); return the public line."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "alphafactory-test", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path.with_suffix(".pub").read_text().strip()


@dataclass(frozen=True)
class Sshd:
    """A running sshd: where it listens, who may log in, and the tree it serves."""

    port: int
    user: str
    host_public_key: str  # OpenSSH public line of the host key: ``type base64 comment``
    client_key: Path  # private key whose public half is authorized
    root: Path  # the served tree on the local filesystem
    chrooted: bool  # True: remote "/" is ``root``; False: remote paths are local paths

    @property
    def host_key(self) -> str:
        """The host key as ``type base64`` (what a connection's ``host_key`` extra pins)."""
        key_type, key_b64, *_ = self.host_public_key.split()
        return f"{key_type} {key_b64}"

    def remote(self, path: str) -> str:
        """The remote name of ``path`` (``/outgoing/x``, relative to the served tree)."""
        path = "/" + path.lstrip("/")
        return path if self.chrooted else f"{self.root}{path}"

    def connection(self) -> dict[str, object]:
        """An Airflow SFTP connection (JSON-ready) for this server: key auth, host key pinned."""
        return {
            "conn_type": "sftp",
            "host": "127.0.0.1",
            "port": self.port,
            "login": self.user,
            "extra": {
                "key_file": str(self.client_key),
                "host_key": self.host_key,  # pinned: no trust on first use
                "look_for_keys": "false",
            },
        }


def _chroot_base() -> Path | None:
    """A folder sshd accepts as the parent of a chroot (every component root-owned and
    writable by root only), or None (not root, or no such folder)."""
    if os.geteuid() != 0:
        return None
    for candidate in (Path("/run"), Path("/var/lib")):
        parts = [candidate, *candidate.parents]
        try:
            if all(p.stat().st_uid == 0 and not p.stat().st_mode & 0o022 for p in parts):
                return candidate
        except OSError:
            continue
    return None


@contextmanager
def run_sshd(workdir: Path, *, chroot: bool = True, install: bool = True) -> Iterator[Sshd]:
    """Start sshd for the duration of the ``with`` block (keys and config in ``workdir``).

    ``chroot``: confine sessions to the served tree when possible (root); the tree then
    lives in a fresh folder under ``/run`` (sshd refuses a chroot below a world-writable
    folder such as ``/tmp``), removed on exit. Raises :class:`SshdUnavailable` when sshd
    cannot be found (nor, with ``install`` and root, installed).
    """
    binary = find_sshd() or (install_sshd() if install else None)
    if binary is None:
        raise SshdUnavailable(
            "OpenSSH sshd is not installed and cannot be (needs root and apt-get)"
        )
    if shutil.which("ssh-keygen") is None:
        raise SshdUnavailable("ssh-keygen is not installed")
    workdir.mkdir(parents=True, exist_ok=True)
    host_pub = keygen(workdir / "host_ed25519")
    client_pub = keygen(workdir / "client_ed25519")
    (workdir / "authorized_keys").write_text(client_pub + "\n")
    if os.geteuid() == 0:  # sshd started by root insists on its privilege-separation dir
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    base = _chroot_base() if chroot else None
    root = Path(tempfile.mkdtemp(prefix="alphafactory-sshd-", dir=base)) if base else None
    if root is not None:
        root.chmod(0o755)  # the chroot itself: root-owned, not group/world-writable
    else:
        root = workdir / "vendor"
        root.mkdir(exist_ok=True)
    port = free_port()
    lines = [
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {workdir / 'host_ed25519'}",
        f"PidFile {workdir / 'sshd.pid'}",
        f"AuthorizedKeysFile {workdir / 'authorized_keys'}",
        "UsePAM no",
        "StrictModes no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        "PermitRootLogin prohibit-password",
        "Subsystem sftp internal-sftp",
        "LogLevel VERBOSE",
    ]
    if base is not None:
        lines += [f"ChrootDirectory {root}", "ForceCommand internal-sftp"]
    config = workdir / "sshd_config"
    config.write_text("\n".join(lines) + "\n")
    log_path = workdir / "sshd.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [binary, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {log_path.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield Sshd(
            port=port,
            user=getpass.getuser(),
            host_public_key=host_pub,
            client_key=workdir / "client_ed25519",
            root=root,
            chrooted=base is not None,
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        if base is not None:
            shutil.rmtree(root, ignore_errors=True)
