"""Shared fixtures: settings isolation and a fresh lake per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.config import get_settings
from pipelines.lake import Lake


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Every test gets its own lake root and Airflow home; no developer .env leaks in."""
    monkeypatch.setenv("ALPHAFACTORY_LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("ALPHAFACTORY_AIRFLOW_HOME", str(tmp_path / "airflow"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(str(tmp_path / "lake"))
