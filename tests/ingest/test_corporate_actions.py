"""Several corporate actions of one security on one ex-date (issue 13).

A regular and a special cash dividend paid together are an ordinary event: both must be
stored (the vendor's action id is in the key), both pass the contract, and both enter the
total return of the ex-date — in the market snapshot and in the research panel alike.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.ingest.runtime import backfill
from pipelines.lake import Lake
from pipelines.pit.lake_panel import build_panel
from pipelines.pit.snapshot import load_snapshot
from pipelines.testing.backdate import HISTORY
from pipelines.timeline import LATEST, trading_calendar
from pipelines.vendors.clock import FrozenClock
from pipelines.vendors.config import MarketConfig
from pipelines.vendors.inprocess import SimulatorFileSource
from pipelines.vendors.simulator import VendorSimulator
from tests.ingest.conftest import LATE_CLOCK, SFTP_FEEDS

pytestmark = pytest.mark.integration

#: Every security pays dividends, every second one with a special dividend beside it.
MARKET = MarketConfig(
    seed=5,
    universe_size=12,
    start=dt.date(2023, 3, 1),
    end=dt.date(2023, 5, 31),
    dividend_payer_fraction=1.0,
    special_dividend_fraction=0.5,
    split_rate=0.0,
)


def _csv(data: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(gzip.decompress(data)), dtype=str)


def test_regular_and_special_dividend_on_one_ex_date_both_count(tmp_path: Path) -> None:
    sim = VendorSimulator(MARKET)
    m = sim.market
    ca = m.corporate_actions
    div = ca[ca["action_type"] == "CASH_DIVIDEND"]
    pairs = div.groupby(["security_id", "ex_idx"]).filter(lambda g: len(g) == 2)
    pairs = pairs[pairs["ex_idx"] < len(m.sessions) - 1]
    assert not pairs.empty, "the market must hold two dividends on one ex-date"
    first = pairs.sort_values("ex_idx").iloc[0]
    sec, ex_idx = str(first["security_id"]), int(first["ex_idx"])
    ex_day = m.sessions[ex_idx]

    lake = Lake(str(tmp_path / "lake"))
    days = trading_calendar().sessions(MARKET.start, ex_day)
    clock = FrozenClock(LATE_CLOCK)
    results = backfill(
        lake,
        days,
        feed_names=list(SFTP_FEEDS),
        source_factory=lambda: SimulatorFileSource(sim, clock),
        workers=1,
        backdate=HISTORY,
    )
    statuses = {o.status for outcomes in results.values() for o in outcomes}
    assert "quarantined" not in statuses, results
    assert lake.status("quarantine").rows in (0, None)

    # both dividends stored and visible, each with its vendor action id
    stored = lake.as_of("corporate_actions", known_at=LATEST, valid_at=ex_day).to_pandas()
    mine = stored[(stored["security_id"] == sec) & (stored["action_type"] == "dividend")]
    vendor_rows = pairs[(pairs["security_id"] == sec) & (pairs["ex_idx"] == ex_idx)]
    assert sorted(mine["action_id"]) == sorted(vendor_rows["action_id"])
    amounts = sorted(mine["amount"].astype(float))
    assert len(amounts) == 2 and amounts[0] > 0 and amounts[1] > 0

    # independent total return of the ex-date from the vendor's raw files
    before = _csv(sim.day_files(m.sessions[ex_idx - 1])["prices.csv.gz"]).set_index("SECID")
    on = _csv(sim.day_files(ex_day)["prices.csv.gz"]).set_index("SECID")
    c0, c1 = float(str(before.loc[sec, "PX_LAST"])), float(str(on.loc[sec, "PX_LAST"]))
    expected = (c1 + sum(amounts)) / c0 - 1.0
    one_only = (c1 + amounts[1]) / c0 - 1.0
    assert abs(expected - one_only) > 1e-4  # a lost dividend would be seen
    # the generator's own return agrees (closes are rounded to 4 decimals)
    assert expected == pytest.approx(float(m.total_return[ex_idx, int(sec[1:])]), abs=1e-4)

    snap = load_snapshot(lake, ex_day, lookback=5)
    assert snap.returns.loc[pd.Timestamp(ex_day), sec] == pytest.approx(expected, abs=1e-12)

    panel = build_panel(lake, m.sessions[ex_idx - 1], ex_day, known_at=LATEST)
    got = float(
        panel.array("ret")[
            list(panel.dates).index(pd.Timestamp(ex_day)), list(panel.securities).index(sec)
        ]
    )
    assert np.isfinite(got)
    assert got == pytest.approx(expected, abs=1e-12)
