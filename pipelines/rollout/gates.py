"""The promotion gates: what a candidate's books measured over its stage, and the verdict.

Over the last ``gates.sessions`` sessions of the candidate's current stage (from the
``daily_book`` rows of its shadow books, and their stage state):

* ``ic`` — mean live rank IC of the candidate's scores against the next session's returns
  (the paper book's ``daily_book.ic``; it decides every session in both stages);
* ``tracking_error`` — canary only: annualized standard deviation of the canary book's
  daily return minus the paper book's (√252);
* ``slippage_bps`` — the trading book's (paper, then canary) realized cost of trading
  (impact + commission, ``daily_book.cost``) minus what the cost model expected for the
  same decisions (the previous session's optimizer transaction-cost term × its NAV), in
  bps of the traded notional;
* ``pretrade_breaches`` — orders of the stage's books rejected by pre-trade checks;
* ``undecided_sessions`` — sessions in which a book's optimizer found no weights
  (infeasible, solver failure): a candidate that cannot decide is not promotable.

A breach above the bound, or an undecided session, fails at once; the other gates are judged once the window is
full (``pending`` before). The verdict is ``pass`` when every gate holds.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipelines.lake.interface import Store
from pipelines.lake.stage_state import StageState
from pipelines.rollout.events import CANARY, PAPER, Candidate
from pipelines.timeline import LATEST, trading_calendar

PASS, FAIL, PENDING = "pass", "fail", "pending"
#: Optimizer statuses of a session that decided (weights found).
DECIDED = ("optimal", "relaxed")


@dataclass(frozen=True)
class GateValues:
    """Measured values over the window and the verdict (see module docstring)."""

    sessions: int
    ic: float | None
    tracking_error: float | None
    slippage_bps: float | None
    pretrade_breaches: int
    undecided_sessions: int
    verdict: str
    failed_gates: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _books(store: Store, portfolio_id: str, start: dt.date, end: dt.date) -> pd.DataFrame:
    try:
        frame = store.as_of("daily_book", known_at=LATEST, valid_at=(start, end)).to_pandas()
    except Exception:
        return pd.DataFrame()
    frame = frame[frame["portfolio_id"] == portfolio_id]
    return frame.sort_values("valid_date").reset_index(drop=True)


def _finite(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _daily_returns(book: pd.DataFrame) -> pd.Series:
    nav = book["nav"].astype(float)
    prev = nav - book["pnl"].astype(float)
    return pd.Series((nav / prev - 1.0).to_numpy(), index=pd.to_datetime(book["valid_date"]))


def _slippage_bps(store: Store, portfolio_id: str, book: pd.DataFrame) -> float | None:
    """(realized − expected cost) / traded notional, bps; None when nothing traded."""
    cal = trading_calendar()
    realized = expected = traded = 0.0
    for _, row in book.iterrows():
        notional = _finite(row.get("traded_notional")) or 0.0
        if notional <= 0:
            continue
        day = pd.Timestamp(row["valid_date"]).date()
        targets = StageState(store, portfolio_id, cal.previous_session(day)).find("targets")
        if targets is None:
            continue  # the fills of a decision we cannot see: not judged
        cost_fraction = _finite(targets.summary().get("cost_term")) or 0.0
        realized += _finite(row.get("cost")) or 0.0
        expected += cost_fraction * float(targets.portfolio_value)
        traded += notional
    if traded <= 0:
        return None
    return 1e4 * (realized - expected) / traded


def measure(store: Store, candidate: Candidate, day: dt.date) -> GateValues:
    """The gate values of ``candidate`` after session ``day`` and their verdict."""
    gates = candidate.config.gates
    first = trading_calendar().next_session(candidate.stage_since)
    paper = _books(store, candidate.book(PAPER), first, day).tail(gates.sessions)
    trading = paper
    te: float | None = None
    if candidate.stage == CANARY:
        trading = _books(store, candidate.book(CANARY), first, day).tail(gates.sessions)
        both = pd.concat(
            [_daily_returns(trading).rename("canary"), _daily_returns(paper).rename("paper")],
            axis=1,
            join="inner",
        ).dropna()
        if len(both) >= 2:
            te = float(np.std(both["canary"] - both["paper"], ddof=1) * math.sqrt(252))
    ics = [x for x in (_finite(v) for v in paper.get("ic", [])) if x is not None]
    ic = float(np.mean(ics)) if ics else None
    books = [paper] if candidate.stage == PAPER else [paper, trading]
    breaches = int(sum(int(b["orders_rejected"].fillna(0).sum()) for b in books if len(b)))
    # A skipped session (no prices at its cutoff) has no optimizer status: not held against it.
    undecided = sum(
        int((b["optimizer_status"].notna() & ~b["optimizer_status"].isin(DECIDED)).sum())
        for b in books
        if len(b)
    )
    slippage = _slippage_bps(store, candidate.book(candidate.stage), trading)
    sessions = len(trading)
    failed: list[str] = []
    if breaches > gates.max_pretrade_breaches:
        failed.append("pretrade_breaches")
    if undecided:
        failed.append("optimizer")
    full = sessions >= gates.sessions
    if full:
        if ic is None or ic < gates.min_ic:
            failed.append("ic")
        if candidate.stage == CANARY and (te is None or te > gates.max_tracking_error):
            failed.append("tracking_error")
        if slippage is not None and slippage > gates.max_slippage_bps:
            failed.append("slippage")
    verdict = FAIL if failed else PASS if full else PENDING
    return GateValues(
        sessions=sessions,
        ic=ic,
        tracking_error=te,
        slippage_bps=slippage,
        pretrade_breaches=breaches,
        undecided_sessions=undecided,
        verdict=verdict,
        failed_gates=",".join(failed) or None,
    )
