"""The backtest's fast paths answer exactly what the general code answers (issue 16).

* :class:`~pipelines.backtest.broker.CachedPrices` reads every security's bar once per
  session (:meth:`LakePriceSource.session_all`); each bar must equal, float for float, the
  one the per-security reference below (the pandas groupby the source used to run) gives.
* :class:`~pipelines.backtest.broker.InMemoryPaperBroker` keeps an index of the orders
  still working instead of scanning every order of the run; it must find the same orders,
  in the same order, as :class:`~pipelines.execution.PaperBroker`'s scan, and skipping a
  pass that cannot change anything must leave the account as a full pass would.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pipelines.backtest.broker import CachedPrices, InMemoryPaperBroker
from pipelines.execution import LakePriceSource, PaperBroker
from pipelines.execution.broker import Algo, AlgoInstruction, BrokerOrder
from pipelines.execution.prices import SessionBar, StaticPriceSource
from pipelines.lake import Lake
from pipelines.timeline import decision_cutoff, trading_calendar

pytestmark = pytest.mark.unit

START, END = dt.date(2024, 1, 2), dt.date(2024, 3, 28)


def _reference_bars(
    lake: Lake, known_at: dt.datetime, day: dt.date, ids: list[str], lookback: int = 20
) -> dict[str, SessionBar]:
    """The bars as the lake price source computed them before its fast path: a pandas
    groupby per security over the same as-of read."""
    start = day - dt.timedelta(days=int(lookback * 1.6) + 10)
    table = lake.as_of(
        "prices",
        known_at=known_at,
        valid_at=(start, day),
        columns=["security_id", "open", "high", "low", "close", "volume"],
        filter=pc.field("security_id").isin(pa.array(ids, pa.string())),
    )
    frame = table.select(
        ["security_id", "valid_date", "open", "high", "low", "close", "volume"]
    ).to_pandas()
    frame["valid_date"] = pd.to_datetime(frame["valid_date"]).dt.date
    frame = frame.sort_values(["security_id", "valid_date"])
    out: dict[str, SessionBar] = {}
    for sid, g in frame.groupby("security_id", sort=False):
        today = g[g["valid_date"] == day]
        if today.empty:
            continue
        row = today.iloc[-1]
        hist = g[g["valid_date"] < day].tail(lookback + 1)
        closes = hist["close"].to_numpy(dtype=float)
        rets = np.diff(np.log(closes)) if len(closes) > 2 else np.array([])
        vols = hist["volume"].to_numpy(dtype=float)
        close = float(row["close"])

        def num(v: object, default: float) -> float:
            x = float(v) if v is not None else np.nan  # type: ignore[arg-type]
            return x if np.isfinite(x) else default

        out[str(sid)] = SessionBar(
            open=num(row["open"], close),
            high=num(row["high"], close),
            low=num(row["low"], close),
            close=close,
            volume=num(row["volume"], 0.0),
            adv=float(np.nanmean(vols)) if len(vols) else None,
            sigma=float(np.std(rets, ddof=1)) if len(rets) > 1 else None,
        )
    return out


def test_cached_session_bars_equal_the_per_security_reference(
    tmp_path: Path, make_simulated_lake: Callable[..., Lake]
) -> None:
    lake = make_simulated_lake(tmp_path / "lake", universe=25, start=START, end=END, seed=3)
    cached = CachedPrices(LakePriceSource(lake, known_at=decision_cutoff(START)))
    ids = [f"S{i:06d}" for i in range(25)]
    for day in trading_calendar().sessions(dt.date(2024, 2, 26), dt.date(2024, 3, 5)):
        known = decision_cutoff(day)
        cached.known_at = known
        want = _reference_bars(lake, known, day, ids)
        assert want, day
        # Asked for a few names first, then for all: the same bar for each every time.
        assert cached.session(day, ids[:3]) == {s: want[s] for s in ids[:3] if s in want}
        assert cached.session(day, ids) == want
        assert LakePriceSource(lake, known_at=known).session(day, ids) == want
        # The next session is not known at this cutoff: no bars, as before.
        assert cached.session(trading_calendar().next_session(day), ids) == {}


class _TimedPrices(StaticPriceSource):
    """Static bars with a knowledge time, as the backtest's price source has one."""

    known_at: dt.datetime | None = None


def _order(i: int, day: dt.date, side: str = "buy") -> BrokerOrder:
    return BrokerOrder(
        client_order_id=f"O{i:04d}",
        account="pf",
        trade_date=day,
        security_id=f"S{i % 7:06d}",
        side=side,  # type: ignore[arg-type]
        quantity=100.0 + i,
        algo=AlgoInstruction(Algo.VWAP),
    )


def test_in_memory_broker_finds_the_working_orders_paper_broker_scans_for(
    tmp_path: Path,
) -> None:
    days = trading_calendar().sessions(dt.date(2024, 3, 4), dt.date(2024, 3, 8))
    bar = SessionBar(open=10.0, high=10.5, low=9.5, close=10.2, volume=1e6, adv=1e6, sigma=0.02)
    prices = _TimedPrices()
    clock = lambda: dt.datetime(2024, 3, 1, tzinfo=dt.UTC)  # noqa: E731
    fast = InMemoryPaperBroker(prices, initial_cash=1e6, clock=clock)
    slow = PaperBroker(tmp_path / "account.json", prices, initial_cash=1e6, clock=clock)
    n = 0
    for day in days:
        prices.known_at = decision_cutoff(trading_calendar().previous_session(day))
        for broker in (fast, slow):
            broker.connect()
        for _ in range(6):
            n += 1
            for broker in (fast, slow):
                broker.submit(_order(n, day, "buy" if n % 3 else "sell"))
                broker.positions("pf")  # works (nothing fills: no bar yet)
        # Asked again with nothing changed: the in-memory broker skips the pass.
        assert fast.work() == 0 and slow.work() == 0
        with fast._state(write=False) as a, slow._state(write=False) as b:
            assert [r["client_order_id"] for r in fast._working(a)] == [
                r["client_order_id"] for r in PaperBroker._working(slow, b)
            ]
            assert len(fast._working(a)) == 6
        # The session's bars arrive with its cutoff: everything fills or expires, on both
        # brokers alike (the new knowledge time makes the in-memory broker work again).
        for i in range(7):
            prices.add(day, f"S{i:06d}", bar)
        prices.known_at = decision_cutoff(day)
        fast.cancel(f"O{n:04d}")
        slow.cancel(f"O{n:04d}")
        assert fast.positions("pf") == slow.positions("pf")
        assert fast.cash("pf") == slow.cash("pf")
        assert fast.fills("pf", day) == slow.fills("pf", day)
        with fast._state(write=False) as a:
            assert fast._working(a) == []
    assert fast.fills("pf") == slow.fills("pf")
    with fast._state(write=False) as a, slow._state(write=False) as b:
        assert a["orders"] == b["orders"]


def test_forgetting_settled_sessions_keeps_what_later_sessions_ask_for() -> None:
    days = trading_calendar().sessions(dt.date(2024, 3, 4), dt.date(2024, 3, 6))
    bar = SessionBar(open=10.0, high=10.5, low=9.5, close=10.2, volume=1e6)
    prices = _TimedPrices()
    broker = InMemoryPaperBroker(prices, initial_cash=1e6)
    broker.connect()
    for n, day in enumerate(days):
        broker.submit(_order(n, day))
    for i in range(7):
        prices.add(days[0], f"S{i:06d}", bar)
    broker.work()
    positions, cash = broker.positions("pf"), broker.cash("pf")
    assert broker.forget_settled(days[0]) == 1 + 3  # the filled order and its 3 slices
    with broker._state(write=False) as st:
        assert sorted(st["orders"]) == ["O0001", "O0002"]
        assert [r["client_order_id"] for r in broker._working(st)] == ["O0001", "O0002"]
    assert broker.positions("pf") == positions and broker.cash("pf") == cash
    for i in range(7):
        prices.add(days[1], f"S{i:06d}", bar)
    prices.known_at = decision_cutoff(days[1])
    broker.work()
    assert [f.client_order_id for f in broker.fills("pf", days[1])] == ["O0001"] * 3


def test_forgetting_settled_sessions_drops_the_booked_events_of_settled_days() -> None:
    # The booked dividends and delistings grew with the run (the account a checkpoint
    # copies); those of days on or before a reconciled session are forgotten with it.
    broker = InMemoryPaperBroker(_TimedPrices(), initial_cash=1e6)
    broker.connect()
    with broker._state() as st:
        st["corporate_actions"] = [
            {"event_id": "C1", "account": "pf", "ex_date": "2024-03-04"},
            {"event_id": "C2", "account": "pf", "ex_date": "2024-03-05"},
        ]
        st["delistings"] = [{"event_id": "D1", "account": "pf", "effective_date": "2024-03-04"}]
    assert broker.forget_settled(dt.date(2024, 3, 4)) == 2
    assert [e["event_id"] for e in broker.corporate_actions("pf")] == ["C2"]
    assert broker.delistings("pf") == []


def test_buffered_reads_of_actions_and_delistings_answer_as_the_lake(
    tmp_path: Path, make_simulated_lake: Callable[..., Lake]
) -> None:
    # Through the backtest's buffered store, corporate actions are read for every security
    # and filtered, and the master is read once for every security before a delisting is
    # looked for: the answers must be the lake's filtered reads'.
    from pipelines.backtest.run import READ_ONLY_TABLES
    from pipelines.execution.corporate_actions import lake_corporate_actions
    from pipelines.execution.delistings import lake_delistings
    from pipelines.lake.buffered import BufferedStore

    lake = make_simulated_lake(tmp_path / "lake", universe=25, start=START, end=END, seed=3)
    store = BufferedStore(lake, cached_tables=READ_ONLY_TABLES)
    ids = [f"S{i:06d}" for i in range(25)]
    found = 0
    for day in trading_calendar().sessions(dt.date(2024, 2, 26), dt.date(2024, 3, 28))[::3]:
        known = decision_cutoff(day)
        for after in (day - dt.timedelta(days=1), day - dt.timedelta(days=40), None):
            for some in (ids, ids[::2], ids[:3]):
                want = lake_corporate_actions(lake, some, known_at=known, after=after, through=day)
                got = lake_corporate_actions(store, some, known_at=known, after=after, through=day)
                assert got == want, (day, after)
                found += len(want)
        for some in (ids, ids[::2], ids[:3]):
            assert lake_delistings(store, some, known_at=known, through=day) == lake_delistings(
                lake, some, known_at=known, through=day
            )
    assert found  # the lake holds actions in the window
