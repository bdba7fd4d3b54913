from __future__ import annotations

from pathlib import Path

import pytest

from tests.daily.helpers import shared_loop_root


@pytest.fixture(scope="session")
def loop_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Market + three sessions of the daily loop (read-only: copy before writing)."""
    return shared_loop_root(tmp_path_factory.getbasetemp())
