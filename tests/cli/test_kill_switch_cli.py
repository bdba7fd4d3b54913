"""``alphafactory kill-switch engage|release|status``: one line each, errors one line and a
non-zero exit; the state is in the lake (any working directory); engage cancels the
configured portfolio's open orders at its broker."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli.main import app
from pipelines.daily.config import DailyConfig
from pipelines.daily.stages import paper_broker
from pipelines.execution import BrokerOrder, OrderStatus
from pipelines.lake import Lake
from pipelines.risk import kill_switch

pytestmark = pytest.mark.unit
runner = CliRunner()


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_engage_status_release_one_line_each_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
    monkeypatch.chdir(tmp_path / "a")
    code, out, _ = _run("kill-switch", "status")
    assert code == 0 and out.count("\n") == 1 and "never engaged" in out
    code, out, _ = _run("kill-switch", "engage", "--reason", "bad data", "--actor", "alice")
    assert code == 0 and out.count("\n") == 1
    assert "ENGAGED" in out and "alice: bad data" in out and "cancelled 0 open order" in out
    monkeypatch.chdir(tmp_path / "b")
    code, out, _ = _run("kill-switch", "status")
    assert code == 0 and out.count("\n") == 1 and "ENGAGED" in out
    assert kill_switch.read_state(Lake.from_settings()).engaged
    code, out, _ = _run("kill-switch", "release", "--reason", "data fixed", "--actor", "bob")
    assert code == 0 and out.count("\n") == 1 and "released" in out and "bob: data fixed" in out
    assert not kill_switch.read_state(Lake.from_settings()).engaged


def test_engage_without_reason_is_one_error_line() -> None:
    code, out, err = _run("kill-switch", "engage")
    assert code != 0 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and "--reason" in err
    assert not kill_switch.read_state(Lake.from_settings()).engaged


def test_unreadable_state_is_one_error_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Lake, name: str, **kw: object) -> object:
        raise OSError("lake unreachable")

    monkeypatch.setattr(Lake, "as_of", broken)
    code, _out, err = _run("kill-switch", "status")
    assert code != 0 and err.count("\n") == 1 and "unreadable" in err


def test_engage_cancels_open_orders_at_the_configured_paper_broker() -> None:
    lake = Lake.from_settings()
    config = DailyConfig.from_env()
    broker = paper_broker(lake, config)
    broker.connect()
    day = dt.date(2024, 1, 3)
    for sid in ("S1", "S2"):
        broker.submit(BrokerOrder(f"K{sid}", config.portfolio_id, day, sid, "buy", 100.0))
    code, out, _ = _run("kill-switch", "engage", "--reason", "runaway", "--actor", "ops")
    assert code == 0 and "cancelled 2 open order(s)" in out
    for cid in ("KS1", "KS2"):
        state = broker.order_status(cid)
        assert state is not None and state.status is OrderStatus.CANCELLED
