"""The kill switch is one audited state in the lake: engage/release history, who/why/when,
read the same from every working directory; an unreadable state fails closed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from pipelines.lake import Lake
from pipelines.lake.catalog import get_table
from pipelines.risk import kill_switch
from pipelines.timeline import ALL_DATES, LATEST

pytestmark = pytest.mark.unit


def at(minute: int) -> dt.datetime:
    return dt.datetime(2024, 5, 2, 14, minute, tzinfo=dt.UTC)


def test_declared_in_the_catalog() -> None:
    spec = get_table("kill_switch")
    assert {"action", "engaged", "actor", "reason", "at"} <= set(spec.column_names)


def test_never_engaged_is_released(lake: Lake) -> None:
    state = kill_switch.read_state(lake)
    assert not state.engaged and state.at is None
    assert kill_switch.blocking_reason(lake) is None


def test_engage_release_is_an_audited_append_only_history(lake: Lake) -> None:
    kill_switch.engage(lake, reason="bad fills", actor="alice", clock=lambda: at(1))
    assert kill_switch.read_state(lake).engaged
    kill_switch.release(lake, reason="fixed", actor="bob", clock=lambda: at(2))
    state = kill_switch.read_state(lake)
    assert not state.engaged and state.actor == "bob" and state.reason == "fixed"
    assert state.at == at(2)
    kill_switch.engage(lake, reason="again", actor="carol", clock=lambda: at(3))
    rows = lake.as_of("kill_switch", known_at=LATEST, valid_at=ALL_DATES).sort_by("at")
    assert rows.column("action").to_pylist() == ["engage", "release", "engage"]
    assert rows.column("actor").to_pylist() == ["alice", "bob", "carol"]
    assert rows.column("reason").to_pylist() == ["bad fills", "fixed", "again"]
    reason = kill_switch.blocking_reason(lake)
    assert reason is not None and "ENGAGED" in reason and "carol: again" in reason


def test_same_state_from_another_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "lake"
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
    monkeypatch.chdir(tmp_path / "a")
    kill_switch.engage(Lake(str(root)), reason="halt", actor="ops")
    monkeypatch.chdir(tmp_path / "b")
    assert kill_switch.read_state(Lake(str(root))).engaged


def test_a_reason_is_required(lake: Lake) -> None:
    with pytest.raises(kill_switch.KillSwitchError, match="reason is required"):
        kill_switch.engage(lake, reason="  ", actor="ops")
    assert not kill_switch.read_state(lake).engaged


def test_unreadable_state_fails_closed() -> None:
    class Broken:
        def as_of(self, name: str, **kw: object) -> pa.Table:
            raise OSError("permission denied")

    with pytest.raises(kill_switch.KillSwitchUnreadableError, match="permission denied"):
        kill_switch.read_state(Broken())  # type: ignore[arg-type]
    reason = kill_switch.blocking_reason(Broken())  # type: ignore[arg-type]
    assert reason is not None and "failing closed" in reason
