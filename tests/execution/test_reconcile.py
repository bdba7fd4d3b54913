"""Reconciliation catches breaks; TCA per order; the audit trail only ever grows."""

from __future__ import annotations

import pandas as pd
import pytest

from pipelines.execution import execute_day, reconcile_day
from pipelines.execution.reconcile import CASH_ITEM
from pipelines.execution.records import read_day

from .conftest import MARKET, NAV, PF, TRADE, bar

pytestmark = pytest.mark.unit


def run(lake, targets, broker, limits, adv):
    return execute_day(lake, PF, TRADE, targets, broker, limits, nav=NAV, adv=adv)


def test_injected_fill_is_a_break(lake, targets, venue, limits, adv, prices):
    run(lake, targets, venue.broker, limits, adv)
    venue.session(TRADE)
    assert reconcile_day(lake, venue.broker, PF, TRADE).clean
    # A fill the broker has and we don't (a manual trade at the broker, a broker error).
    foreign = venue.engine.inject_fill(PF, "S1", "buy", 150, 101.0, TRADE)
    report = reconcile_day(lake, venue.broker, PF, TRADE)
    assert not report.clean
    brk = report.breaks.set_index("security_id")
    # Both brokers report cash, so the cash the foreign buy spent is a break too.
    assert sorted(brk.index) == ["$CASH", "S1"]
    assert brk.loc["S1", "difference"] == 150
    assert brk.loc["S1", "theirs"] - brk.loc["S1", "ours"] == 150
    assert brk.loc["S1", "note"] == "broker holds more"
    assert brk.loc["$CASH", "difference"] == pytest.approx(-150 * 101.0)
    if venue.acceptor is None:  # the paper broker also lists the fill itself
        assert report.foreign_fills == [foreign.fill_id]
    # Never booked as ours: our positions come from fills on our own orders only.
    fills = read_day(lake, "fills", TRADE, PF)
    assert foreign.fill_id not in set(fills["fill_id"])
    stored = read_day(lake, "reconciliation", TRADE, PF).set_index("security_id")
    assert stored.loc["S1", "status"] == "break"
    audit = read_day(lake, "execution_audit", TRADE, PF)
    breaks = audit[(audit["stage"] == "reconcile") & (audit["event"] == "break")]
    assert "S1" in breaks["security_id"].tolist()


def test_cash_is_reconciled(lake, targets, venue, limits, adv):
    run(lake, targets, venue.broker, limits, adv)
    venue.session(TRADE)
    report = reconcile_day(lake, venue.broker, PF, TRADE)
    assert report.clean
    cash = report.rows.set_index("security_id").loc[CASH_ITEM]
    assert cash["status"] == "match" and cash["ours"] != 0
    assert cash["theirs"] == pytest.approx(venue.engine.cash(PF), abs=1e-6)
    # A charge at the broker we never booked (a fee): only the cash differs.
    engine = venue.engine
    engine.seed(PF, engine.positions(PF), cash=engine.cash(PF) - 25.0)
    report = reconcile_day(lake, venue.broker, PF, TRADE)
    brk = report.breaks.set_index("security_id")
    assert list(brk.index) == [CASH_ITEM]
    assert brk.loc[CASH_ITEM, "difference"] == pytest.approx(-25.0)
    stored = read_day(lake, "reconciliation", TRADE, PF).set_index("security_id")
    assert stored.loc[CASH_ITEM, "status"] == "break"


def test_tca_shortfall_vs_decision_arrival_and_vwap(lake, targets, paper, limits, adv, prices):
    run(lake, targets, paper, limits, adv)
    report = reconcile_day(lake, paper, PF, TRADE, prices=prices)
    tca = report.tca.set_index("security_id")
    assert len(tca) == len(MARKET)
    fills = read_day(lake, "fills", TRADE, PF)
    for sid, (decision, target, volume) in MARKET.items():
        f = fills[fills["security_id"] == sid]
        avg = (f["quantity"] * f["price"]).sum() / f["quantity"].sum()
        s = 1.0 if target > 0 else -1.0
        b = bar(decision, volume)
        row = tca.loc[sid]
        assert row["avg_fill_price"] == pytest.approx(avg)
        assert row["arrival_price"] == pytest.approx(b.open)
        assert row["vwap"] == pytest.approx((b.high + b.low + b.close) / 3)
        assert row["vwap_method"] == "typical_price"
        assert row["shortfall_decision_bps"] == pytest.approx(s * (avg / decision - 1) * 1e4)
        assert row["shortfall_arrival_bps"] == pytest.approx(s * (avg / b.open - 1) * 1e4)
        assert row["shortfall_vwap_bps"] == pytest.approx(s * (avg / row["vwap"] - 1) * 1e4)
        assert row["fill_rate"] == 1.0
        assert row["execution_cost"] == pytest.approx(s * abs(target) * (avg - decision))
        # Paying the spread and impact: a cost against the VWAP the fills were based on.
        assert row["shortfall_vwap_bps"] > 0
    stored = read_day(lake, "tca", TRADE, PF)
    assert len(stored) == len(MARKET)
    # Re-running adds no TCA rows.
    reconcile_day(lake, paper, PF, TRADE, prices=prices)
    assert len(lake.as_of("tca", known_at=_far(), valid_at=TRADE)) == len(MARKET)


def test_audit_trail_is_append_only(lake, targets, paper, limits, adv, prices):
    run(lake, targets, paper, limits, adv)
    reconcile_day(lake, paper, PF, TRADE, prices=prices)
    first = read_day(lake, "execution_audit", TRADE, PF).set_index("event_id")
    assert (
        first["stage"].isin({"targets", "pretrade", "orders", "send", "fills", "reconcile"}).all()
    )
    paper.inject_fill(PF, "S3", "sell", 10, 20.0, TRADE)
    run(lake, targets, paper, limits, adv)
    reconcile_day(lake, paper, PF, TRADE, prices=prices)
    second = read_day(lake, "execution_audit", TRADE, PF).set_index("event_id")
    # Every earlier event is still there, unchanged; new facts were added.
    assert set(first.index) < set(second.index)
    assert second.loc[first.index, "detail"].tolist() == first["detail"].tolist()
    ops = {v["operation"] for v in lake.versions("execution_audit")}
    assert ops <= {"CREATE TABLE", "WRITE"}
    modes = {
        (v.get("operationParameters") or {}).get("mode")
        for v in lake.versions("execution_audit")
        if v["operation"] == "WRITE"
    }
    assert modes == {"Append"}


def _far():
    from pipelines.timeline import LATEST

    return LATEST


def test_same_execution_id_in_two_portfolios_keeps_both_fills(lake):
    # Regression: fills were keyed by fill_id alone; two portfolios' paper accounts both
    # number executions from 0, so the second portfolio's fills were silently dropped.
    import datetime as dt

    import pandas as pd

    from pipelines.execution.records import append_new

    def fill(portfolio: str) -> dict:
        return {
            "fill_id": "X00000001",
            "client_order_id": f"{portfolio}-order",
            "broker_order_id": "P00000001",
            "portfolio_id": portfolio,
            "security_id": "S1",
            "side": "buy",
            "quantity": 100.0,
            "price": 10.0,
            "commission": 0.0,
            "executed_at": pd.Timestamp("2024-01-03T15:00:00Z"),
            "broker": "paper",
        }

    at = dt.datetime(2024, 1, 3, 22, tzinfo=dt.UTC)
    for portfolio in ("pf-a", "pf-b"):
        assert append_new(lake, "fills", pd.DataFrame([fill(portfolio)]), TRADE, known_at=at) == 1
    assert len(read_day(lake, "fills", TRADE, "pf-a")) == 1
    assert len(read_day(lake, "fills", TRADE, "pf-b")) == 1


def test_two_portfolios_opened_with_the_same_cash_keep_both_books(lake):
    """The positions/cash batch id named the table, date and values but not the portfolio:
    a second portfolio whose book equalled the first one's was silently not written."""
    import datetime as dt

    from pipelines.execution.reconcile import previous_cash, seed_positions

    day = dt.date(2024, 6, 3)
    for pf in ("alpha", "beta"):
        seed_positions(lake, pf, day, {"S1": 100.0}, cash=1_000_000.0, reason="open")
    after = day + dt.timedelta(days=1)
    for pf in ("alpha", "beta"):
        assert previous_cash(lake, pf, after) == 1_000_000.0, pf
        assert set(read_day(lake, "positions", day, pf)["security_id"]) == {"S1"}, pf


class CountingPrices:
    """A price source that counts the session reads the paper broker makes."""

    def __init__(self, inner):
        self.inner = inner
        self.reads = 0

    def session(self, trade_date, security_ids):
        self.reads += 1
        return self.inner.session(trade_date, security_ids)


def test_reconcile_works_the_paper_broker_once_not_once_per_order(
    tmp_path, lake, targets, limits, adv, prices
):
    """Before: every ``order_status`` of the sync (one per order), then fills, positions
    and cash each worked the paper broker's orders again, re-reading the session's prices
    (112 passes, 40 s of the demo's 50 s reconciliation). The answer is the same."""
    from pipelines.execution import PaperBroker

    counting = CountingPrices(prices)
    # Orders for a session whose prices are not published yet keep working (the live
    # case: today's orders fill tomorrow), so every query would find them pending.
    counting.inner = type(prices)()
    broker = PaperBroker(tmp_path / "paper" / "state.json", counting)
    broker.connect()
    run(lake, targets, broker, limits, adv)
    before = counting.reads
    report = reconcile_day(lake, broker, PF, TRADE)
    assert counting.reads - before == 1
    assert len(MARKET) > 1 and report.rows is not None
    # Once the session's prices are known, the next reconciliation fills and books them.
    counting.inner = prices
    report = reconcile_day(lake, broker, PF, TRADE)
    assert report.clean
    fills = read_day(lake, "fills", TRADE, PF)
    assert set(fills["security_id"]) == set(MARKET)


class AllBarsPrices(CountingPrices):
    """A source that can give every bar of a session in one read (as the lake's can)."""

    def __init__(self, inner):
        super().__init__(inner)
        self.all_reads = 0

    def session_all(self, trade_date):
        self.all_reads += 1
        return dict(self.inner.bars.get(trade_date, {}))


def test_reconcile_reads_the_session_bars_once_for_marks_and_tca(
    lake, targets, paper, limits, adv, prices
):
    """Before: the marks and the TCA each read the session's bars (two lake reads of the
    price history a session); the TCA and the marks are the same."""
    run(lake, targets, paper, limits, adv)
    want = reconcile_day(lake, paper, PF, TRADE, prices=prices)
    counting = AllBarsPrices(prices)
    got = reconcile_day(lake, paper, PF, TRADE, prices=counting)
    assert (counting.all_reads, counting.reads) == (1, 0)
    pd.testing.assert_frame_equal(got.tca, want.tca)
    stored = read_day(lake, "positions", TRADE, PF)
    assert stored["price"].notna().all() and len(stored) == len(MARKET)


def _book(lake, day, positions, source="fills", cash=None):
    """Record our book at ``day`` as reconciliation does (``source`` fills: a whole book)."""
    import datetime as dt

    from pipelines.execution.reconcile import _write_versioned

    now = dt.datetime.combine(day, dt.time(22), tzinfo=dt.UTC)
    rows = [
        {
            "portfolio_id": PF,
            "security_id": s,
            "quantity": q,
            "price": None,
            "market_value": None,
            "source": source,
        }
        for s, q in sorted(positions.items())
    ]
    _write_versioned(lake, "positions", rows, day, PF, ["quantity", "price"], "security_id", now)
    if cash is not None:
        book = [
            {
                "portfolio_id": PF,
                "currency": "USD",
                "balance": cash,
                "trade_flow": 0.0,
                "commission": 0.0,
                "source": source,
            }
        ]
        _write_versioned(lake, "cash", book, day, PF, ["balance"], "currency", now)


class _Ranges:
    """A store recording the valid ranges of its reads of positions and cash."""

    def __init__(self, lake):
        self.lake, self.ranges = lake, []

    def as_of(self, name, **kw):
        if name in ("positions", "cash"):
            self.ranges.append(kw["valid_at"])
        return self.lake.as_of(name, **kw)


def test_our_book_before_a_date_reads_a_few_sessions_not_ten_years(lake) -> None:
    """The latest whole book decides our positions and cash: a daily reconcile reads the
    last fortnight, not the ten-year lookback (a long backtest read all its history every
    session, quadratic in its length), and answers the same as the whole lookback."""
    import datetime as dt

    from pipelines.execution.reconcile import (
        _LOOKBACK,
        _latest_positions,
        _read,
        previous_cash,
        previous_positions,
    )

    day = dt.date(2024, 3, 1)
    _book(lake, day - dt.timedelta(days=400), {"S9": 50.0}, cash=1.0)  # long ago, then closed
    _book(lake, day - dt.timedelta(days=399), {"S9": 0.0}, cash=2.0)
    _book(lake, day - dt.timedelta(days=3), {"S1": 10.0, "S2": 5.0}, cash=3.0)
    _book(lake, day - dt.timedelta(days=1), {"S1": 12.0, "S2": 0.0}, cash=4.0)
    store = _Ranges(lake)
    assert previous_positions(store, PF, day) == {"S1": 12.0}
    assert previous_cash(store, PF, day) == 4.0
    assert all(lo > day - dt.timedelta(days=15) for lo, _ in store.ranges), store.ranges
    # The whole lookback answers the same.
    whole = _read(lake, "positions", (day - _LOOKBACK, day - dt.timedelta(days=1)), PF)
    assert _latest_positions(whole) == {"S1": 12.0}


def test_an_idle_book_and_a_partial_seed_still_find_older_positions(lake) -> None:
    """Positions recorded before the near window are found when nothing newer decides:
    a portfolio idle for months, and an operator's seed of one security (a correction)
    on top of an older whole book."""
    import datetime as dt

    from pipelines.execution.reconcile import (
        previous_book_date,
        previous_cash,
        previous_positions,
        seed_positions,
    )

    day = dt.date(2024, 3, 1)
    old = day - dt.timedelta(days=200)
    _book(lake, old, {"S1": 10.0, "S2": 5.0}, cash=7.0)
    assert previous_positions(lake, PF, day) == {"S1": 10.0, "S2": 5.0}
    assert previous_cash(lake, PF, day) == 7.0
    seed_positions(lake, PF, day - dt.timedelta(days=1), {"S2": 6.0}, reason="break fixed")
    assert previous_positions(lake, PF, day) == {"S1": 10.0, "S2": 6.0}
    assert previous_cash(lake, PF, day) == 7.0
    assert previous_book_date(lake, PF, day) == day - dt.timedelta(days=1)


def test_the_report_carries_our_positions_before_the_day(lake, targets, paper, limits, adv):
    """The reconcile stage takes our previous positions from the report (one read of our
    book a session, not two): previous_positions' answer, closed positions left out."""
    import datetime as dt

    from pipelines.execution.reconcile import previous_positions

    _book(lake, TRADE - dt.timedelta(days=1), {"S1": 10.0, "S2": 0.0}, cash=NAV)
    run(lake, targets, paper, limits, adv)
    report = reconcile_day(lake, paper, PF, TRADE)
    assert report.previous == previous_positions(lake, PF, TRADE) == {"S1": 10.0}
