"""A minimal client for Airflow 3's public REST API (``/api/v2``) with simple-auth login."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests


class AirflowApi:
    """Calls ``<base_url>/api/v2/…`` with a bearer token from ``POST /auth/token``."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()

    def healthy(self) -> bool:
        """Whether the API server answers its (unauthenticated) health endpoint."""
        try:
            return self.session.get(f"{self.base_url}/api/v2/monitor/health", timeout=5).ok
        except requests.RequestException:
            return False

    def execution_api_ready(self) -> bool:
        """Whether the execution API (``/execution``, what workers call) answers.

        Its first request builds the versioned app and can take many seconds on a busy
        host; waiting for it here keeps that out of the first task's start (whose client
        would time out and retry).
        """
        try:
            return self.session.get(f"{self.base_url}/execution/health", timeout=60).ok
        except requests.RequestException:
            return False

    def close(self) -> None:
        """Close pooled connections (a keep-alive connection delays the server's shutdown)."""
        self.session.close()

    def login(self, username: str, password: str) -> None:
        """Exchange the simple auth manager's user/password for a JWT; use it from now on."""
        response = self.session.post(
            f"{self.base_url}/auth/token",
            json={"username": username, "password": password},
            timeout=30,
        )
        response.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, f"{self.base_url}/api/v2{path}", timeout=30, **kwargs)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if not response.ok:
            raise AssertionError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json()


def wait_for(
    what: str,
    probe: Callable[[], Any],
    *,
    timeout: float,
    interval: float = 1.0,
    alive: Callable[[], None] | None = None,
) -> Any:
    """Poll ``probe`` until it returns something truthy; return it.

    ``alive`` is called before each probe and should raise when a process the wait depends
    on has died, so a crash fails fast with its log instead of running into the timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None:
            alive()
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
