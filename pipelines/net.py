"""Loopback networking helpers shared by the simulators, the demo and the tests."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port free on loopback right now (another process may take it before use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
