"""Pre-trade checks: each rule rejects exactly what it should; kill switch; audit rows."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from pipelines.lake import Lake
from pipelines.risk import kill_switch
from pipelines.risk.pretrade import (
    AUDIT_COLUMNS,
    LIMITS_DIR,
    BookState,
    Order,
    RiskLimits,
    check_orders,
    load_limits,
    with_kill_switch,
)

pytestmark = pytest.mark.unit


@pytest.fixture()
def limits() -> RiskLimits:
    return load_limits("default")


@pytest.fixture()
def book() -> BookState:
    return BookState(
        nav=10_000_000.0,
        positions={"AAA": 5_000, "BBB": -5_000},
        prices={"AAA": 100.0, "BBB": 50.0},
        sectors={"AAA": "Tech", "BBB": "Energy", "CCC": "Tech"},
    )


def order(**kw: object) -> Order:
    base = dict(
        client_order_id="o1",
        portfolio_id="pf",
        trade_date=date(2024, 1, 2),
        security_id="CCC",
        side="buy",
        quantity=1_000.0,
        reference_price=100.0,
        adv=1_000_000.0,
        sector="Tech",
        limit_price=None,
        last_close=100.0,
    )
    base.update(kw)
    return Order(**base)  # type: ignore[arg-type]


def failed_rules(res, oid: str = "o1") -> set[str]:
    return set(res.rejected_rules(oid))


def test_clean_order_passes_every_rule(limits: RiskLimits, book: BookState) -> None:
    res = check_orders([order()], limits, book)
    assert len(res.accepted) == 1 and not res.rejected
    assert tuple(res.audit.columns) == AUDIT_COLUMNS
    assert res.audit["passed"].all()
    assert {
        "kill_switch",
        "valid_order",
        "restricted_list",
        "max_order_notional",
        "max_order_shares",
        "max_adv_pct",
        "price_collar",
        "max_gross_exposure",
        "net_exposure",
        "sector_exposure",
        "daily_loss_limit",
    } == set(res.audit["rule"])


@pytest.mark.parametrize(
    ("rule", "kw", "limit_update", "book_update"),
    [
        ("valid_order", {"quantity": 0.0}, {}, {}),
        ("restricted_list", {}, {"restricted": ["CCC"]}, {}),
        (
            "max_order_notional",
            {"quantity": 60_000.0},
            {
                "max_order_shares": 1e9,
                "max_adv_pct": 1.0,
                "max_sector_exposure": 1.0,
                "net_exposure": {"lo": -1, "hi": 1},
            },
            {},
        ),
        (
            "max_order_shares",
            {"quantity": 300_000.0, "reference_price": 1.0, "last_close": 1.0},
            {"max_adv_pct": 1.0},
            {},
        ),
        ("max_adv_pct", {"adv": 5_000.0}, {}, {}),
        ("price_collar", {"limit_price": 125.0}, {}, {}),
        (
            "max_gross_exposure",
            {"quantity": 9_000.0},
            {
                "max_gross_exposure": 0.15,
                "max_sector_exposure": 1.0,
                "net_exposure": {"lo": -1, "hi": 1},
            },
            {},
        ),
        (
            "net_exposure",
            {"quantity": 9_000.0},
            {"net_exposure": {"lo": -0.1, "hi": 0.1}, "max_sector_exposure": 1.0},
            {},
        ),
        (
            "sector_exposure",
            {"quantity": 9_000.0},
            {"max_sector_exposure": 0.12, "net_exposure": {"lo": -1, "hi": 1}},
            {},
        ),
        ("daily_loss_limit", {}, {}, {"daily_pnl": -400_000.0}),
    ],
)
def test_each_rule_rejects_exactly_its_breach(
    rule: str, kw: dict, limit_update: dict, book_update: dict, limits: RiskLimits, book: BookState
) -> None:
    lim = RiskLimits.model_validate({**limits.model_dump(), **limit_update})
    bk = replace(book, **book_update)
    res = check_orders([order(**kw)], lim, bk)
    assert not res.accepted
    assert failed_rules(res) == {rule}
    row = res.audit[(res.audit["rule"] == rule)].iloc[0]
    assert not row["passed"] and row["reason"]
    # The same order without the breach passes.
    ok = check_orders([order()], limits, book)
    assert ok.accepted


def test_price_collar_uses_reference_price_for_market_orders(
    limits: RiskLimits, book: BookState
) -> None:
    res = check_orders([order(reference_price=80.0, last_close=100.0)], limits, book)
    assert failed_rules(res) == {"price_collar"}


def test_risk_reducing_orders_pass_exposure_and_loss_rules(
    limits: RiskLimits, book: BookState
) -> None:
    lim = limits.model_copy(update={"max_gross_exposure": 0.05})
    bk = replace(book, daily_pnl=-1_000_000.0)
    sell = order(security_id="AAA", side="sell", quantity=5_000.0, sector="Tech")
    res = check_orders([sell], lim, bk)
    assert res.accepted and not res.rejected


def test_post_trade_limits_are_cumulative_over_the_batch(
    limits: RiskLimits, book: BookState
) -> None:
    lim = RiskLimits.model_validate(
        {**limits.model_dump(), "max_sector_exposure": 0.20, "net_exposure": {"lo": -1, "hi": 1}}
    )
    # Tech starts at 0.05 NAV; each order adds 0.04 → 0.09, 0.13, 0.17, then 0.21 > 0.20.
    orders = [order(client_order_id=f"o{i}", quantity=4_000.0) for i in range(4)]
    res = check_orders(orders, lim, book)
    assert [o.client_order_id for o in res.accepted] == ["o0", "o1", "o2"]
    assert res.rejected_rules("o3") == ["sector_exposure"]


def test_kill_switch_flag_blocks_everything(limits: RiskLimits, book: BookState) -> None:
    res = check_orders(
        [order(), order(client_order_id="o2", side="sell")], with_kill_switch(limits), book
    )
    assert not res.accepted and len(res.rejected) == 2
    assert failed_rules(res) == {"kill_switch"}
    assert "configuration flag" in res.rejected[0][1][0].reason


def test_central_kill_switch_blocks_everything_from_any_folder(
    limits: RiskLimits, book: BookState, lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert check_orders([order()], limits, book, store=lake).accepted
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    kill_switch.engage(lake, reason="halt", actor="ops")
    monkeypatch.chdir(tmp_path / "b")  # another working directory, same lake
    res = check_orders([order()], limits, book, store=lake)
    assert not res.accepted and failed_rules(res) == {"kill_switch"}
    assert (
        "ENGAGED" in res.rejected[0][1][0].reason and "by ops: halt" in res.rejected[0][1][0].reason
    )
    kill_switch.release(lake, reason="all clear", actor="ops")
    assert check_orders([order()], limits, book, store=lake).accepted


def test_unreadable_kill_switch_blocks_everything(limits: RiskLimits, book: BookState) -> None:
    class Unreachable:
        def as_of(self, name: str, **kw: object) -> object:
            raise OSError("s3: connection refused")

    res = check_orders([order()], limits, book, store=Unreachable())  # type: ignore[arg-type]
    assert not res.accepted and failed_rules(res) == {"kill_switch"}
    assert "unreadable" in res.rejected[0][1][0].reason


def test_audit_rows_one_per_rule_per_order(limits: RiskLimits, book: BookState) -> None:
    res = check_orders([order(), order(client_order_id="o2", quantity=10**7)], limits, book)
    audit = res.audit
    assert set(audit["client_order_id"]) == {"o1", "o2"}
    assert audit.groupby("client_order_id").size().eq(11).all()
    failed = audit[~audit["passed"]]
    assert set(failed["client_order_id"]) == {"o2"}
    assert (failed["reason"].str.len() > 0).all()


def test_scalar_exposure_is_the_trees_exposure_bit_for_bit() -> None:
    """The pre-trade book's Python-float exposure equals limits_tree.exposure, signed
    zeros and NaN included (the checks must not move when the book stops using numpy)."""
    import math

    import numpy as np

    from pipelines.portfolio.limits_tree import KINDS, exposure
    from pipelines.risk.pretrade import _exposure

    for w in (0.0, -0.0, 1e-300, -1e-300, 0.25, -0.25, math.inf, -math.inf, math.nan, 3.0):
        for kind in KINDS:
            want = float(exposure(kind, w))
            got = _exposure(kind, w)
            assert (math.isnan(want) and math.isnan(got)) or (
                want == got and math.copysign(1.0, want) == math.copysign(1.0, got)
            ), (kind, w, want, got)
            assert np.float64(got).tobytes() == np.float64(want).tobytes() or math.isnan(want)


def test_load_limits_parses_a_file_once_and_sees_edits(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    text = (LIMITS_DIR / "default.yaml").read_text()
    path.write_text(text)
    first = load_limits(path)
    assert load_limits(path) is first  # same content: parsed once
    path.write_text(text.replace("kill_switch: false", "kill_switch: true"))
    assert load_limits(path).kill_switch and not first.kill_switch


def test_book_opened_from_positions_equals_moving_each_position_in() -> None:
    """The book's opening (inlined moves from zero) gives exactly the floats of moving
    every position into an empty book, and the limits' chains are shared across batches."""
    import random

    from pipelines.risk.pretrade import _Book, _tree_of

    rng = random.Random(7)
    sids = [f"S{i:03d}" for i in range(300)]
    positions = {s: float(rng.randint(-5000, 5000)) for s in sids[:250]}
    positions["S000"] = 0.0
    prices = {s: rng.uniform(1, 400) for s in sids}
    sectors = {s: f"sec{i % 7}" for i, s in enumerate(sids)}
    state = BookState(nav=3.3e7, positions=positions, prices=prices, sectors=sectors)
    limits = load_limits("default")
    tree, chains = _tree_of(limits)
    opened = _Book(state, tree, chains)
    moved = _Book(BookState(nav=state.nav, sectors=sectors), tree)
    for sid, q in positions.items():
        moved.move(sid, q * prices[sid])
    assert opened.notional == moved.notional
    assert opened.gross == moved.gross
    assert opened.sums == moved.sums
    assert list(opened.sums) == list(moved.sums)
    assert _tree_of(limits)[1] is chains and chains  # the next batch reuses the chains


def test_audit_frame_and_records_are_the_same_rows(limits: RiskLimits, book: BookState) -> None:
    """The frame (built from the checks' columns) is ``DataFrame(records)``, dtypes and
    all, for a batch with breaches, invalid orders and none at all."""
    import pandas as pd

    batch = [
        order(client_order_id="o1"),
        order(client_order_id="o2", quantity=10_000_000.0),
        order(client_order_id="o3", side="hold"),  # type: ignore[arg-type]
        order(client_order_id="o4", security_id="AAA", side="sell", quantity=5_000.0),
    ]
    for orders in (batch, batch[2:3], []):
        res = check_orders(orders, limits, book)
        assert [r["client_order_id"] for r in res.records][:1] == [
            o.client_order_id for o in orders
        ][:1]
        expected = pd.DataFrame(res.records, columns=list(AUDIT_COLUMNS))
        pd.testing.assert_frame_equal(res.audit, expected, check_exact=True)
        assert all(type(r["value"]) is float and type(r["limit"]) is float for r in res.records)
        assert res.rows() == [tuple(r[c] for c in AUDIT_COLUMNS[1:]) for r in res.records]
        assert sum(not r["passed"] for r in res.records) == sum(len(b) for _, b in res.rejected)


def test_a_batch_judged_again_with_the_same_inputs_gets_the_same_verdict(
    limits: RiskLimits, book: BookState
) -> None:
    """check_orders reuses the last batch's verdict only for the same orders, book, kill
    switch and limits: an input that differs (a signed zero included) is judged anew."""
    from pipelines.risk import pretrade

    batch = [order(client_order_id="o1"), order(client_order_id="o2", security_id="AAA")]
    first = check_orders(batch, limits, book, now=None)
    calls: list[int] = []
    judge = pretrade._judge

    def counted(*args: object) -> object:
        calls.append(1)
        return judge(*args)  # type: ignore[arg-type]

    pretrade._judge = counted  # type: ignore[assignment]
    try:
        again = check_orders([replace(o) for o in batch], limits, book)
        assert calls == []
        assert again.checks == first.checks and again.checks is not first.checks
        assert [o.client_order_id for o in again.accepted] == [
            o.client_order_id for o in first.accepted
        ]
        again.checks[0].append(("mutated", True, 0.0, 0.0, ""))  # not the memo's list
        assert check_orders(batch, limits, book).checks == first.checks
        assert calls == []
        for other in (
            replace(book, prices={"AAA": 100.0, "BBB": 50.000001}),
            replace(book, positions={"AAA": 5_000, "BBB": -5_000.0}),  # an int became a float
            replace(book, positions={"BBB": -5_000, "AAA": 5_000}),  # another order
            replace(book, nav=-0.0 + 10_000_000.0, daily_pnl=-0.0),
        ):
            check_orders(batch, limits, other)
            assert len(calls) == 1
            calls.clear()
        check_orders([replace(batch[0], quantity=999.0), batch[1]], limits, book)
        check_orders(batch, with_kill_switch(limits), book)
        check_orders(batch, limits.model_copy(), book)  # equal limits, another object
        assert len(calls) == 3
    finally:
        pretrade._judge = judge  # type: ignore[assignment]
