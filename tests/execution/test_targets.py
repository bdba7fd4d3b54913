"""execute_day from targets stored in the lake (``target_portfolios``-shaped) or a frame."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest

from pipelines.execution import execute_day, load_orders, load_targets
from pipelines.lake import TableSpec, get_table
from pipelines.lake.catalog import temporary_table
from pipelines.portfolio.targets import TARGET_COLUMNS

from .conftest import DECISION, NAV, PF, TRADE

pytestmark = pytest.mark.unit

# The portfolio stage declares ``target_portfolios``; this test uses a private table of
# the same shape (the rows of ``TargetPortfolio.to_frame()``) so it does not depend on it.
_STRINGS = {"portfolio_id", "security_id", "status", "solver"}
TEST_TABLE = TableSpec(
    name="exec_test_target_portfolios",
    description="test-only copy of target_portfolios' shape",
    key=("portfolio_id", "security_id"),
    fields=tuple(
        pa.field(
            c,
            pa.string() if c in _STRINGS else pa.date32() if c == "date" else pa.float64(),
            nullable=c not in ("portfolio_id", "security_id"),
        )
        for c in TARGET_COLUMNS
    ),
    valid_time_meaning="decision date",
)


@pytest.fixture(autouse=True)
def _test_table():
    with temporary_table(TEST_TABLE):
        yield


def _rows(targets: pd.DataFrame) -> pd.DataFrame:
    frame = pd.DataFrame({c: targets.get(c) for c in TARGET_COLUMNS})
    frame["date"] = DECISION
    for c in TARGET_COLUMNS:
        if c not in _STRINGS and c != "date":
            frame[c] = frame[c].astype(float)
    frame["status"] = "optimal"
    frame["valid_date"] = DECISION
    frame["known_at"] = pd.Timestamp("2024-01-02T22:00:00Z")
    return frame


def test_execute_day_from_lake_targets(lake, targets, paper, limits, adv):
    lake.write(TEST_TABLE.name, _rows(targets))
    loaded = load_targets(lake, PF, DECISION, table=TEST_TABLE.name)
    assert list(loaded["security_id"]) == sorted(targets["security_id"])
    assert {"security_id", "target_shares", "price"} <= set(loaded.columns)
    report = execute_day(lake, PF, TRADE, loaded, paper, limits, nav=NAV, adv=adv)
    assert len(report.submitted) == len(targets)
    orders = load_orders(lake, PF, TRADE).set_index("security_id")
    assert orders.loc["S2", "side"] == "sell" and orders.loc["S2", "quantity"] == 2_000
    # Point in time: before the targets were written there were none.
    with pytest.raises(LookupError, match="no targets for portfolio pf1"):
        load_targets(
            lake,
            PF,
            DECISION,
            table=TEST_TABLE.name,
            known_at=dt.datetime(2024, 1, 2, 21, tzinfo=dt.UTC),
        )


def test_missing_targets_table_is_a_clear_error(lake):
    with pytest.raises(LookupError, match="exec_test_target_portfolios does not exist"):
        load_targets(lake, PF, DECISION, table=TEST_TABLE.name)


def test_target_shares_frame_is_enough(lake, paper, limits, adv):
    frame = pd.DataFrame(
        {"security_id": ["S1", "S3"], "target_shares": [500.0, -300.0], "price": [100.0, 20.0]}
    )
    report = execute_day(lake, PF, TRADE, frame, paper, limits, nav=NAV, adv=adv)
    assert len(report.submitted) == 2
    with pytest.raises(ValueError, match="lack columns"):
        execute_day(
            lake, "pf2", TRADE, frame.drop(columns="price"), paper, limits, nav=NAV, adv=adv
        )


def test_real_target_portfolios_table(lake, targets, paper, limits, adv):
    try:
        spec = get_table("target_portfolios")
    except Exception:
        pytest.skip("target_portfolios is not declared yet (portfolio stage)")
    rows = pd.DataFrame({f.name: None for f in spec.fields}, index=range(len(targets)))
    for c in ("portfolio_id", "security_id", "target_shares", "price"):
        rows[c] = targets[c].to_numpy()
    rows["portfolio_value"] = NAV
    rows["status"] = "optimal"
    for f in spec.fields:
        if pa.types.is_floating(f.type):
            rows[f.name] = rows[f.name].astype(float)
            if not f.nullable:
                rows[f.name] = rows[f.name].fillna(0.0)
        elif not f.nullable and rows[f.name].isna().any():
            rows[f.name] = "test"
    rows["valid_date"] = DECISION
    rows["known_at"] = pd.Timestamp("2024-01-02T22:00:00Z")
    lake.write("target_portfolios", rows)
    loaded = load_targets(lake, PF, DECISION)
    # No nav=: the NAV comes from the rows' portfolio_value.
    report = execute_day(lake, PF, TRADE, loaded, paper, limits, adv=adv)
    assert len(report.submitted) == len(targets)


def test_netting_one_row_per_security_gives_the_groupby_floats() -> None:
    """The column fast path of the netting equals the groupby it skips (sum: NaN as
    nothing, -0.0 as +0.0; last price: NaN kept), bit for bit."""
    import math

    import numpy as np
    import pandas as pd

    from pipelines.execution.orders import _net_targets

    rng = np.random.default_rng(5)
    shares = rng.normal(0, 1000, 60).round()
    shares[:6] = [np.nan, -0.0, 0.0, np.inf, -np.inf, 1e300]
    prices = rng.uniform(1, 100, 60)
    prices[3:6] = np.nan
    frame = pd.DataFrame(
        {"security_id": [f"S{i:02d}" for i in rng.permutation(60)], "target_shares": shares}
    ).assign(price=prices)
    for f in (frame, frame.assign(target_shares=np.arange(60))):
        target, price = _net_targets(f)
        g = f.groupby("security_id", sort=True).agg(
            target_shares=("target_shares", "sum"), price=("price", "last")
        )
        want_t = {str(k): float(v) for k, v in g["target_shares"].items()}
        want_p = {str(k): float(v) for k, v in g["price"].items()}
        assert sorted(target) == sorted(want_t)
        for k, v in want_t.items():
            assert math.copysign(1, v) == math.copysign(1, target[k]) and (
                v == target[k] or (math.isnan(v) and math.isnan(target[k]))
            ), k
        for k, v in want_p.items():
            assert v == price[k] or (math.isnan(v) and math.isnan(price[k])), k
