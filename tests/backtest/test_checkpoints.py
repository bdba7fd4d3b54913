"""A backtest's checkpoints: each records the equity rows since the one before (not every
row so far, which made the payloads, and the run, quadratic in its length), and a resumed
run gathers its rows from all of them, checkpoints of the older all-rows kind included."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pipelines.backtest.run import CHECKPOINT, _checkpoint, _save_checkpoint
from pipelines.errors import ConfigurationError
from pipelines.lake import Lake
from pipelines.lake.stage_state import StageState, history
from pipelines.timeline import decision_cutoff

pytestmark = pytest.mark.integration

RUN = "bt-0123456789ab-r1"
DAYS = [dt.date(2024, 6, 3) + dt.timedelta(days=k) for k in range(6)]
ROWS: list[dict[str, object]] = [{"date": d, "nav": 100.0 + k} for k, d in enumerate(DAYS)]


def _save(lake: Lake, index: int, rows_from: int) -> None:
    _save_checkpoint(lake, RUN, DAYS[index], index, 2, ROWS[: index + 1], rows_from, {}, {})


def test_each_checkpoint_records_its_segment_and_resuming_gathers_them(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    for index, rows_from in ((1, 0), (3, 2), (5, 4)):
        _save(lake, index, rows_from)
    saved = [payload for _, payload in history(lake, RUN, CHECKPOINT)]
    assert [p["rows"] for p in saved] == [ROWS[0:2], ROWS[2:4], ROWS[4:6]]
    last = _checkpoint(lake, RUN)
    assert last is not None and last["index"] == 5 and last["session"] == DAYS[5]
    assert last["rows"] == ROWS


def test_a_checkpoint_of_the_older_kind_holds_every_row_so_far(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    day = DAYS[3]
    old = {"session": day, "index": 3, "every": 2, "rows": ROWS[:4], "broker": {}, "skipped": {}}
    StageState(lake, RUN, day, clock=lambda: decision_cutoff(day)).put(CHECKPOINT, old)
    _save(lake, 5, 4)
    last = _checkpoint(lake, RUN)
    assert last is not None and last["rows"] == ROWS


def test_missing_rows_are_an_error_not_a_shorter_curve(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    _save(lake, 3, 2)  # the checkpoint of sessions 0-1 is missing
    with pytest.raises(ConfigurationError, match="2 equity rows"):
        _checkpoint(lake, RUN)
    assert _checkpoint(Lake(str(tmp_path / "empty")), RUN) is None
