"""The backtest's P&L against independent accounting, through splits, dividends and
delistings in held names (issue 14).

Simulated market seed 8 (40 names) over 2024-04-15..2024-06-21, with planted events on top
of the vendor's own dividends and acquisitions: twelve splits (2:1, 3:1 and 1:2 reverse),
two dozen extra cash dividends (one of them a second dividend on an ex-date that already
has one) and two more acquisitions. The books must show:

* each session's P&L (ΔNAV) equal, to 1e-8 of NAV, to the held book's total return
  computed here from the raw closes, the actions and the delisting prices, plus the day's
  fills marked to the close, minus commissions;
* ``pnl_trading`` equal to the fills' part alone: no fake P&L from a corporate action.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.backtest import run_backtest
from pipelines.lake import Lake
from pipelines.timeline import LATEST, trading_calendar
from tests.daily.helpers import BACKTEST_CONFIG, END, START

pytestmark = [pytest.mark.unit, pytest.mark.slow]

FIRST, LAST = dt.date(2024, 4, 15), dt.date(2024, 6, 21)
PLANTED_DELISTINGS = {"S000038": dt.date(2024, 5, 24), "S000039": dt.date(2024, 6, 5)}


def _utc(day: dt.date, hour: int = 22) -> pd.Timestamp:
    return pd.Timestamp(day).tz_localize("UTC") + pd.Timedelta(hours=hour)


def _plant(frames: dict[str, pd.DataFrame]) -> Mapping[str, pd.DataFrame]:
    cal = trading_calendar()
    days = cal.sessions(FIRST + dt.timedelta(days=3), LAST)
    prices = frames["prices"].copy()
    actions: list[dict[str, object]] = []
    ratios = (2.0, 3.0, 0.5)
    for i in range(12):  # splits on S000000.., every third session
        sid, ex = f"S{i:06d}", days[3 * i + 1]
        ratio = ratios[i % 3]
        after = (prices["security_id"] == sid) & (prices["valid_date"] >= pd.Timestamp(ex))
        for col in ("open", "high", "low", "close"):
            prices.loc[after, col] = prices.loc[after, col] / ratio
        prices.loc[after, "volume"] = prices.loc[after, "volume"] * ratio
        actions.append({"security_id": sid, "action_type": "split", "ratio": ratio, "ex": ex})
    for i in range(24):  # dividends on S000012.., every other session
        sid, ex = f"S{12 + i % 26:06d}", days[i * (len(days) - 1) // 24]
        actions.append({"security_id": sid, "action_type": "dividend", "amount": 0.3, "ex": ex})
    # a second (special) dividend on an ex-date that has one already
    actions.append(
        {"security_id": "S000012", "action_type": "dividend", "amount": 1.1, "ex": days[0]}
    )
    extra = pd.DataFrame(
        [
            {
                "security_id": a["security_id"],
                "action_type": a["action_type"],
                "action_id": f"PLANTED-{n}",
                "ratio": a.get("ratio", np.nan),
                "amount": a.get("amount", np.nan),
                "currency": "USD",
                "announce_date": pd.Timestamp(cal.offset(a["ex"], -8)),  # type: ignore[arg-type]
                "valid_date": pd.Timestamp(a["ex"]),  # type: ignore[arg-type]
                "known_at": _utc(cal.offset(a["ex"], -8)),  # type: ignore[arg-type]
            }
            for n, a in enumerate(actions)
        ]
    )
    master = frames["security_master"]
    gone = []
    for sid, day in PLANTED_DELISTINGS.items():
        prices = prices[
            ~((prices["security_id"] == sid) & (prices["valid_date"] > pd.Timestamp(day)))
        ]
        last = master[master["security_id"] == sid].tail(1)
        gone.append(
            last.assign(
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
        "corporate_actions": pd.concat([frames["corporate_actions"], extra], ignore_index=True),
        "security_master": pd.concat([master, *gone], ignore_index=True),
    }


def _rows(lake: Lake, table: str, run_id: str) -> pd.DataFrame:
    frame = lake.as_of(table, known_at=LATEST, valid_at=(FIRST, LAST)).to_pandas()
    return frame[frame["portfolio_id"] == run_id]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    from pipelines.testing.lakes import simulated_lake

    root: Path = tmp_path_factory.mktemp("accounting")
    lake = simulated_lake(
        root / "lake", universe=40, start=START, end=END, signal=0.3, seed=8, perturb=_plant
    )
    result = run_backtest(lake, FIRST, LAST, BACKTEST_CONFIG, write_report=False)
    return {"lake": lake, "run_id": result.run_id}


def test_pnl_is_the_independent_total_return_of_the_held_book(run: dict[str, object]) -> None:
    lake, run_id = run["lake"], str(run["run_id"])
    assert isinstance(lake, Lake)
    close = (
        lake.as_of("prices", known_at=LATEST, valid_at=(FIRST - dt.timedelta(days=10), LAST))
        .to_pandas()
        .pivot(index="valid_date", columns="security_id", values="close")
    )
    close.index = pd.to_datetime(close.index).date
    ca = lake.as_of("corporate_actions", known_at=LATEST, valid_at=(FIRST, LAST)).to_pandas()
    ca["valid_date"] = pd.to_datetime(ca["valid_date"]).dt.date
    positions = _rows(lake, "positions", run_id)
    positions["valid_date"] = pd.to_datetime(positions["valid_date"]).dt.date
    fills = _rows(lake, "fills", run_id)
    fills["valid_date"] = pd.to_datetime(fills["valid_date"]).dt.date
    book = _rows(lake, "daily_book", run_id).sort_values("valid_date")
    book["valid_date"] = pd.to_datetime(book["valid_date"]).dt.date
    audit = _rows(lake, "execution_audit", run_id)

    held_events = audit["event"].value_counts()
    applied = audit[audit["event"] == "corporate_action"]["detail"].astype(str)
    assert applied.str.contains('"split"').sum() >= 10, held_events
    assert applied.str.contains('"dividend"').sum() >= 30, held_events
    assert held_events.get("delisted", 0) >= 3, held_events

    sessions = list(book["valid_date"])
    last_close: dict[str, float] = {}
    fake_total = 0.0
    for prev_day, day in itertools.pairwise(sessions):
        prev = positions[positions["valid_date"] == prev_day]
        prev_q = {
            str(s): float(q)
            for s, q in zip(prev["security_id"], prev["quantity"], strict=True)
            if q
        }
        for s in close.columns:
            px = close.at[prev_day, s] if prev_day in close.index else np.nan
            if np.isfinite(px):
                last_close[str(s)] = float(px)
        acts = ca[ca["valid_date"] == day]
        holding = 0.0
        for s, q in prev_q.items():
            k = float(
                np.prod(
                    acts[(acts["security_id"] == s) & (acts["action_type"] == "split")]["ratio"]
                )
            )
            div = float(
                acts[(acts["security_id"] == s) & (acts["action_type"] == "dividend")][
                    "amount"
                ].sum()
            )
            today = close.at[day, s] if day in close.index and s in close.columns else np.nan
            now = float(today) if np.isfinite(today) else last_close[s] / k  # stale mark
            holding += q * (k * now + div - last_close[s])
        day_fills = fills[fills["valid_date"] == day]
        trading = 0.0
        for f in day_fills.to_dict("records"):
            sign = 1.0 if f["side"] == "buy" else -1.0
            mark = close.at[day, f["security_id"]]
            trading += sign * float(f["quantity"]) * (float(mark) - float(f["price"]))
            trading -= float(f["commission"] or 0.0)
        row = book[book["valid_date"] == day].iloc[-1]
        nav = float(row["nav"])
        assert float(row["pnl"]) == pytest.approx(holding + trading, abs=1e-8 * nav), day
        fake = float(row["pnl_trading"]) - trading
        assert abs(fake) <= 1e-8 * nav, (day, fake)
        fake_total += fake
    assert abs(fake_total) <= 1e-8 * float(book["nav"].iloc[-1])


def test_books_reconcile_every_session(run: dict[str, object]) -> None:
    lake, run_id = run["lake"], str(run["run_id"])
    assert isinstance(lake, Lake)
    rec = _rows(lake, "reconciliation", run_id)
    assert set(rec["status"]) <= {"match", "unverified"}, rec[rec["status"] == "break"]
