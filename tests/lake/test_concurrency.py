"""Two processes writing the same table at once lose nothing and duplicate nothing."""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
from pathlib import Path

import pytest

from pipelines.lake import Lake
from tests.lake.helpers import prices, ts

pytestmark = pytest.mark.unit


def _writer(root: str, worker: int, batches: int, barrier, same_batch: bool) -> None:  # type: ignore[no-untyped-def]
    lake = Lake(root)
    barrier.wait()
    for i in range(batches):
        ids = ["SHARED"] if same_batch else [f"W{worker}-{i}-{j}" for j in range(5)]
        lake.write("prices", prices(2 + i % 5, ids), known_at=ts(2 + i % 5))


def _run(root: Path, batches: int, same_batch: bool) -> None:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [
        ctx.Process(target=_writer, args=(str(root), w, batches, barrier, same_batch))
        for w in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0


def test_two_processes_appending_lose_nothing(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    Lake(str(root)).init()
    _run(root, batches=8, same_batch=False)
    lake = Lake(str(root))
    assert lake.status("prices").rows == 2 * 8 * 5
    got = lake.as_of(
        "prices", known_at=ts(20), valid_at=(dt.date(2024, 1, 1), dt.date(2024, 1, 31))
    )
    assert got.num_rows == 80


def test_two_processes_writing_the_same_batches_store_them_once(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    Lake(str(root)).init()
    _run(root, batches=5, same_batch=True)
    # Five distinct (date, known_at) batches of one row each, whoever won each race.
    assert Lake(str(root)).status("prices").rows == 5
