"""``replay`` recomputes past sessions bit for bit, and names what a tampered lake changed
(issue 17).

One simulated market (seed 8, 40 names) with planted events in held names: splits
(2:1 on 2024-05-20, 1:2 on 2024-05-29, 2:1 on 2024-06-04) and acquisitions (delistings
on 2024-05-24 and 2024-06-05), each in a name the portfolio holds then. On it:

* a 20-session backtest (2024-05-13..2024-06-10, the backtest's buffered store, its warm
  optimizer chain across sessions): every session's replay is bit-identical — risk model,
  targets, orders, pre-trade verdicts — the delisting and split sessions among them;
* the live daily loop (``run_day`` with the file-backed paper broker, as the DAG's tasks
  run the stages) for 2024-05-29..2024-06-05, recording the risk and target tables: each
  session's replay is bit-identical, the 06-05 delisting and the 06-04 split included;
* a scratch copy of the lake with one stored target rewritten: the replay names the
  table, the security and the column; the original lake is untouched by every replay.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipelines.backtest import run_backtest
from pipelines.config import get_settings
from pipelines.daily.config import DailyConfig
from pipelines.daily.loop import run_day
from pipelines.daily.stages import paper_broker
from pipelines.execution.records import read_day
from pipelines.lake import Lake
from pipelines.lake.catalog import all_tables
from pipelines.lake.stage_state import StageState
from pipelines.replay import IDENTICAL, SessionReplay, replay_session, replay_sessions
from pipelines.timeline import decision_cutoff, trading_calendar

pytestmark = [pytest.mark.unit, pytest.mark.slow]

START, END = dt.date(2024, 1, 2), dt.date(2024, 6, 28)
BT_FIRST, BT_LAST = dt.date(2024, 5, 13), dt.date(2024, 6, 10)
LIVE_DAYS = tuple(trading_calendar().sessions(dt.date(2024, 5, 29), dt.date(2024, 6, 5)))
SPLITS = {
    "S000001": (dt.date(2024, 5, 20), 2.0),
    "S000002": (dt.date(2024, 5, 29), 0.5),
    "S000003": (dt.date(2024, 6, 4), 2.0),
}
#: Names the backtest holds on 2024-05-23 and the live loop on 2024-06-04 (the plants do
#: not change any decision before them).
DELISTINGS = {"S000037": dt.date(2024, 5, 24), "S000036": dt.date(2024, 6, 5)}
LIVE = DailyConfig(lookback_sessions=60)
BACKTEST = LIVE.model_copy(update={"record_portfolio_tables": False})


def _utc(day: dt.date, hour: int = 22) -> pd.Timestamp:
    return pd.Timestamp(day).tz_localize("UTC") + pd.Timedelta(hours=hour)


def _plant(frames: dict[str, pd.DataFrame]) -> Mapping[str, pd.DataFrame]:
    """Splits and acquisitions on top of the vendor's own corporate actions."""
    cal = trading_calendar()
    prices = frames["prices"].copy()
    actions = []
    for n, (sid, (ex, ratio)) in enumerate(sorted(SPLITS.items())):
        after = (prices["security_id"] == sid) & (prices["valid_date"] >= pd.Timestamp(ex))
        for col in ("open", "high", "low", "close"):
            prices.loc[after, col] = prices.loc[after, col] / ratio
        prices.loc[after, "volume"] = prices.loc[after, "volume"] * ratio
        announced = cal.offset(ex, -8)
        actions.append(
            {
                "security_id": sid,
                "action_type": "split",
                "action_id": f"PLANTED-{n}",
                "ratio": ratio,
                "amount": np.nan,
                "currency": "USD",
                "announce_date": pd.Timestamp(announced),
                "valid_date": pd.Timestamp(ex),
                "known_at": _utc(announced),
            }
        )
    master = frames["security_master"]
    gone = []
    for sid, day in DELISTINGS.items():
        prices = prices[
            ~((prices["security_id"] == sid) & (prices["valid_date"] > pd.Timestamp(day)))
        ]
        gone.append(
            master[master["security_id"] == sid]
            .tail(1)
            .assign(
                listed=False,
                delist_date=pd.Timestamp(day),
                delist_reason="ACQUIRED",
                valid_date=pd.Timestamp(day),
                known_at=_utc(day),
            )
        )
    return {
        **frames,
        "prices": prices.reset_index(drop=True),
        "corporate_actions": pd.concat(
            [frames["corporate_actions"], pd.DataFrame(actions)], ignore_index=True
        ),
        "security_master": pd.concat([master, *gone], ignore_index=True),
    }


def _versions(lake: Lake) -> dict[str, int | None]:
    """Every table's Delta version (None: not created)."""
    out: dict[str, int | None] = {}
    for name in all_tables():
        table = lake.table(name)
        out[name] = None if table is None else table.version()
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The planted market, a 20-session backtest and three live sessions on it."""
    from pipelines.portfolio import optimizer
    from pipelines.testing.lakes import simulated_lake

    root: Path = tmp_path_factory.mktemp("replay")
    lake = simulated_lake(
        root / "lake", universe=40, start=START, end=END, signal=0.3, seed=8, perturb=_plant
    )
    backtest = run_backtest(lake, BT_FIRST, BT_LAST, BACKTEST, write_report=False)
    optimizer._CACHE.clear()  # the live loop runs as a fresh process would
    broker = paper_broker(lake, LIVE)
    for day in LIVE_DAYS:
        broker.prices.known_at = decision_cutoff(day)  # type: ignore[attr-defined]
        run_day(lake, day, LIVE, broker, write_report=False)
    return {"root": root, "lake": lake, "run_id": backtest.run_id}


def _delisted_holdings(lake: Lake, portfolio_id: str, day: dt.date) -> list[str]:
    """Names the portfolio held into ``day`` and that ``day``'s books cashed out."""
    pos = read_day(lake, "positions", day, portfolio_id)
    return sorted(pos.loc[pos["source"] == "delisting", "security_id"].astype(str))


def _held_before(lake: Lake, portfolio_id: str, day: dt.date) -> set[str]:
    previous = trading_calendar().previous_session(day)
    book = StageState(lake, portfolio_id, previous).get("book")
    return {s for s, q in book.positions.items() if q}


def _assert_identical(results: list[SessionReplay]) -> None:
    for r in results:
        assert [a.artefact for a in r.artefacts] == [
            "risk model",
            "targets",
            "orders",
            "pre-trade verdicts",
        ]
        bad = {a.artefact: a.difference for a in r.artefacts if not a.identical}
        assert not bad, f"{r.portfolio_id} {r.session}: {bad}"
        assert r.book_source == "reconciliation" and r.settings.startswith("recorded"), r
        assert r.book_check.startswith("our positions agree"), r.book_check


def test_every_session_of_a_backtest_replays_bit_identical(world: dict[str, Any]) -> None:
    lake, run_id = world["lake"], world["run_id"]
    days = trading_calendar().sessions(BT_FIRST, BT_LAST)
    assert len(days) == 20
    before = _versions(lake)
    results = replay_sessions(lake, days, run_id)
    assert _versions(lake) == before, "a replay wrote to the lake"
    _assert_identical(results)
    # The events this test is about happened to held names inside the run.
    assert _delisted_holdings(lake, run_id, DELISTINGS["S000037"]) == ["S000037"]
    for sid, (ex, _) in SPLITS.items():
        assert sid in _held_before(lake, run_id, ex), (sid, ex)
    # Warm starts: the backtest's sessions after its first solve warm-started, and the
    # replay re-solved the chain before each (one pass over the run).
    chains = {r.session: len(r.warm_chain) for r in results}
    assert chains[days[0]] == 0 and chains[days[-1]] == 19
    # Every artefact was compared against something stored, not against nothing.
    for r in results:
        compared = {a.artefact: a.compared for a in r.artefacts}
        assert "stage_state.risk_model" in compared["risk model"]
        assert "stage_state.targets" in compared["targets"]
        assert compared["orders"] == ("orders",), (r.session, compared["orders"])
        assert "execution_audit (pretrade)" in compared["pre-trade verdicts"]


def test_live_sessions_replay_bit_identical(world: dict[str, Any]) -> None:
    lake = world["lake"]
    pid = LIVE.portfolio_id
    before = _versions(lake)
    results = replay_sessions(lake, list(LIVE_DAYS), pid)
    assert _versions(lake) == before, "a replay wrote to the lake"
    _assert_identical(results)
    assert _delisted_holdings(lake, pid, DELISTINGS["S000036"]) == ["S000036"]
    assert "S000003" in _held_before(lake, pid, SPLITS["S000003"][0])
    for r in results:  # the live loop records the risk and target tables: compared too
        compared = {a.artefact: a.compared for a in r.artefacts}
        assert "risk_exposures" in compared["risk model"]
        assert "target_portfolios" in compared["targets"]
    # A session replayed alone re-solves its in-process warm chain (the loop's earlier days).
    alone = replay_session(lake, LIVE_DAYS[2], pid)
    assert [d for _, d in alone.warm_chain] == list(LIVE_DAYS[:2])
    _assert_identical([alone])


@pytest.fixture
def scratch(world: dict[str, Any], tmp_path: Path) -> Iterator[Lake]:
    copy = tmp_path / "lake"
    shutil.copytree(world["root"] / "lake", copy)
    yield Lake(str(copy))


def test_replay_names_a_tampered_target(
    world: dict[str, Any], scratch: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid, day = LIVE.portfolio_id, LIVE_DAYS[1]
    stored = scratch.as_of(
        "target_portfolios", known_at=decision_cutoff(day), valid_at=day
    ).to_pandas()
    stored = stored[stored["portfolio_id"] == pid].sort_values("security_id")
    victim = str(stored["security_id"].iloc[0])
    forged = stored[stored["security_id"] == victim].copy()
    forged["target_shares"] = forged["target_shares"] + 100.0
    keep = [c for c in forged.columns if not c.startswith("_")]
    scratch.write("target_portfolios", forged[keep], batch_id="tampered-target")
    original = _versions(world["lake"])

    result = replay_session(scratch, day, pid)
    verdict = {a.artefact: a.difference for a in result.artefacts}
    assert verdict["risk model"] is None and verdict["orders"] is None
    assert verdict["pre-trade verdicts"] is None
    diff = verdict["targets"]
    assert diff is not None and "target_portfolios" in diff and victim in diff, diff
    assert "target_shares" in diff, diff
    assert _versions(world["lake"]) == original

    # The command says the same, and exits 1 on a difference.
    monkeypatch.setenv("ALPHAFACTORY_LAKE_ROOT", scratch.location.root)
    get_settings.cache_clear()
    try:
        from pipelines.cli.main import app

        runner = CliRunner()
        out = runner.invoke(app, ["replay", "--session", day.isoformat(), "--portfolio", pid])
        assert out.exit_code == 1, out.output
        assert "target_portfolios" in out.output and victim in out.output
        assert out.output.count(IDENTICAL) == 3, out.output
        clean = runner.invoke(
            app, ["replay", "--session", LIVE_DAYS[0].isoformat(), "--portfolio", pid, "--json"]
        )
        assert clean.exit_code == 0, clean.output
        doc = json.loads(clean.output)
        assert doc[0]["identical"] is True
        assert [a["result"] for a in doc[0]["artefacts"]] == [IDENTICAL] * 4
    finally:
        get_settings.cache_clear()
