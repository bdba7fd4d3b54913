"""The replay's pieces on their own: the bit-for-bit comparison, the in-memory store that
never writes to the lake, and the command's refusal of a session that never ran."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipelines.config import get_settings
from pipelines.lake import Lake
from pipelines.portfolio.results import SolveRecord
from pipelines.replay.diff import first_difference, rows_difference
from pipelines.replay.store import ReplayStore
from pipelines.timeline import LATEST, decision_cutoff

pytestmark = pytest.mark.unit


def _record(solve_time: float, objective: float) -> SolveRecord:
    return SolveRecord("solve", "CLARABEL", "optimal", solve_time, None, objective)


def test_floats_compare_by_their_bits_and_timings_are_not_decisions() -> None:
    assert first_difference(0.1 + 0.2, 0.30000000000000004) is None
    assert first_difference(float("nan"), float("nan")) is None
    assert first_difference(0.0, -0.0) is not None
    assert first_difference(1.0, np.nextafter(1.0, 2.0)) is not None
    assert first_difference(_record(0.5, 1.0), _record(9.0, 1.0)) is None
    found = first_difference(_record(0.5, 1.0), _record(0.5, 1.0 + 1e-16 * 2))
    assert found is not None and found.startswith("objective")
    a = np.array([[1.0, 2.0], [3.0, np.nan]])
    b = a.copy()
    assert first_difference(a, b) is None
    b[1, 0] = 3.0000000000000004
    assert first_difference(a, b, "B") == "B[1, 0]: stored 3.0 != replayed 3.0000000000000004"


def test_rows_are_matched_on_their_key_and_the_first_difference_is_named() -> None:
    stored = pd.DataFrame(
        {"security_id": ["A", "B"], "target_shares": [10.0, 20.0], "_ingested_at": [1, 2]}
    )
    same = stored.iloc[::-1].assign(_ingested_at=[7, 8])
    assert rows_difference(stored, same, ["security_id"], "t") is None
    changed = stored.assign(target_shares=[10.0, 21.0])
    found = rows_difference(stored, changed, ["security_id"], "t")
    assert found == "t {'security_id': 'B'}: target_shares: stored 20.0 != replayed 21.0"
    fewer = stored.iloc[:1]
    assert "stored row {'security_id': 'B'} not replayed" in str(
        rows_difference(stored, fewer, ["security_id"], "t")
    )


def test_the_store_keeps_writes_in_memory_and_reads_them_back(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    day = dt.date(2024, 6, 3)
    store = ReplayStore(lake, decision_cutoff(day), None)
    row = pd.DataFrame(
        [{"portfolio_id": "p", "name": "x", "version": 1, "content_hash": "h", "payload": b"1"}]
    )
    assert store.write("stage_state", row, known_at=decision_cutoff(day), valid_date=day).written
    assert lake.table("stage_state") is None  # nothing reached the lake
    assert store.as_of("stage_state", known_at=LATEST, valid_at=day).num_rows == 1
    # Capped at the cutoff: a fact known one microsecond later is not visible.
    later = decision_cutoff(day) + dt.timedelta(microseconds=1)
    store.write("stage_state", row.assign(name="y"), known_at=later, valid_date=day)
    assert store.as_of("stage_state", known_at=LATEST, valid_at=day).num_rows == 1
    assert store.written().as_of("stage_state", known_at=LATEST, valid_at=day).num_rows == 2


@pytest.fixture
def _lake_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ALPHAFACTORY_LAKE_ROOT", str(tmp_path / "lake"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("_lake_root")
def test_a_session_that_never_ran_is_refused_in_one_line() -> None:
    from pipelines.cli.main import app

    out = CliRunner().invoke(app, ["replay", "--session", "2024-06-03", "--portfolio", "nope"])
    assert out.exit_code == 1
    assert out.output.startswith("error: no run of portfolio 'nope' for session 2024-06-03")
