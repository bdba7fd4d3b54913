"""Shared fixtures: settings isolation, a fresh lake per test, the simulated-lake factory."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines.config import get_settings
from pipelines.lake import Lake


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Every test gets its own lake root and Airflow home; no developer .env leaks in, and
    nothing a test's code puts into the environment leaks out: the ingest runtime defaults
    ``AIRFLOW_CONN_*`` vendor connections into ``os.environ`` (for in-process hooks), and a
    connection left behind by one test's simulator would be inherited — as the user's own,
    which wins — by a later test's ``airflow dags test``, whose sensor then polls a server
    that no longer exists."""
    saved = dict(os.environ)
    monkeypatch.setenv("ALPHAFACTORY_LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("ALPHAFACTORY_AIRFLOW_HOME", str(tmp_path / "airflow"))
    get_settings.cache_clear()
    yield
    for key in set(os.environ) - set(saved):
        del os.environ[key]
    os.environ.update(saved)
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3-compatible HTTP server on loopback (a fresh one per test module)."""
    from moto.server import ThreadedMotoServer

    from pipelines.net import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(str(tmp_path / "lake"))


@pytest.fixture
def make_simulated_lake(tmp_path: Path) -> Callable[..., Lake]:
    """The one simulated-lake factory, :func:`pipelines.testing.lakes.simulated_lake`.

    ``make_simulated_lake(path=None, *, universe, start, end, signal=0.05, seed=11,
    perturb=None)``; without ``path`` the lake is this test's lake root (``tmp_path/lake``,
    where ``ALPHAFACTORY_LAKE_ROOT`` points, so DAG runs and the CLI see it).
    """
    from pipelines.testing.lakes import simulated_lake  # the simulator costs ~0.3 s to import

    def make(path: str | Path | None = None, **market: Any) -> Lake:
        return simulated_lake(tmp_path / "lake" if path is None else path, **market)

    return make
