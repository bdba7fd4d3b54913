"""Unit tests: the synthetic market and the in-process simulator API."""

from __future__ import annotations

import gzip
import io
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from pipelines.vendors.config import MarketConfig
from pipelines.vendors.market import generate_market
from pipelines.vendors.simulator import NotSimulatedError, VendorSimulator

pytestmark = pytest.mark.unit


def _csv(data: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(gzip.decompress(data)), dtype={"SECID": str})


def test_same_seed_same_bytes(sim: VendorSimulator) -> None:
    again = VendorSimulator(sim.config, faults=sim.faults)
    for day in (sim.sessions[0], date(2023, 3, 16), date(2023, 3, 17), sim.sessions[-1]):
        assert again.day_files(day) == sim.day_files(day)
    other = VendorSimulator(replace(sim.config, seed=12))
    assert (
        other.day_files(sim.sessions[5])["prices.csv.gz"]
        != sim.day_files(sim.sessions[5])["prices.csv.gz"]
    )


def test_disk_cache_round_trip(sim: VendorSimulator, tmp_path) -> None:
    cached = VendorSimulator(sim.config, faults=sim.faults, cache_dir=tmp_path)
    day = date(2023, 3, 17)  # carries the correction file
    first = cached.day_files(day)
    reloaded = VendorSimulator(sim.config, faults=sim.faults, cache_dir=tmp_path)
    assert reloaded._load_cached(day, reloaded.publish_at(day)).files == first  # type: ignore[union-attr]
    assert first == sim.day_files(day)


def test_calendar_has_no_weekends_or_holidays(sim: VendorSimulator) -> None:
    assert all(d.weekday() < 5 for d in sim.sessions)
    for holiday in (date(2023, 7, 4), date(2023, 12, 25), date(2024, 1, 1), date(2023, 11, 23)):
        assert holiday not in sim.sessions
        with pytest.raises(NotSimulatedError):
            sim.day_folder(holiday)
    assert date(2023, 11, 24) in sim.sessions  # early close is still a session
    everything = sim.visible_days(datetime(2030, 1, 1, tzinfo=UTC))
    assert set(everything) <= set(sim.sessions)
    assert len(sim.sessions) == len(set(sim.sessions))


def test_publish_time_is_1800_new_york(sim: VendorSimulator) -> None:
    day = date(2023, 6, 1)  # EDT: 18:00 = 22:00 UTC
    assert sim.publish_at(day) == datetime(2023, 6, 1, 22, 0, tzinfo=UTC)
    assert not sim.is_published(day, datetime(2023, 6, 1, 21, 59, 59, tzinfo=UTC))
    assert sim.is_published(day, datetime(2023, 6, 1, 22, 0, tzinfo=UTC))
    assert sim.publish_at(date(2023, 12, 1)) == datetime(2023, 12, 1, 23, 0, tzinfo=UTC)


def test_total_return_identity_holds_through_splits_and_dividends(sim: VendorSimulator) -> None:
    m = sim.market
    r = m.total_return.astype(np.float64)
    ca = m.corporate_actions
    k = np.ones_like(m.close)
    div = np.zeros_like(m.close)
    sec = ca["security_id"].str[1:].astype(int).to_numpy()
    ex = ca["ex_idx"].to_numpy()
    split = (ca["action_type"] == "SPLIT").to_numpy()
    k[ex[split], sec[split]] = ca["split_to"].to_numpy()[split] / ca["split_from"].to_numpy()[split]
    div[ex[~split], sec[~split]] = ca["dividend_amount"].to_numpy()[~split]
    implied = (m.close[1:] * k[1:] + div[1:]) / m.close[:-1] - 1.0
    ok = np.isfinite(implied) & np.isfinite(r[1:])
    assert ok.sum() > 10_000
    np.testing.assert_allclose(implied[ok], r[1:][ok], atol=2e-6)
    assert split.sum() > 0 and (~split).sum() > 0


def test_split_is_visible_in_raw_vendor_prices(sim: VendorSimulator) -> None:
    m = sim.market
    ca = m.corporate_actions
    splits = ca[(ca["action_type"] == "SPLIT")]
    assert len(splits) > 0
    hits = 0
    for row in splits.itertuples():
        ratio = row.split_to / row.split_from
        ann_file = _csv(sim.day_files(row.announce_date.date())["corporate_actions.csv.gz"])
        announced = ann_file[ann_file["ACTION_ID"] == row.action_id].iloc[0]
        assert announced["EX_DATE"] == row.ex_date.date().isoformat()
        assert announced["SPLIT_TO"] / announced["SPLIT_FROM"] == pytest.approx(ratio)
        before = sim.clean_prices(m.sessions[row.ex_idx - 1]).set_index("SECID")
        on = sim.clean_prices(m.sessions[row.ex_idx]).set_index("SECID")
        jump = on.loc[row.security_id, "PX_LAST"] / before.loc[row.security_id, "PX_LAST"]
        tr = 1 + m.total_return[row.ex_idx, int(row.security_id[1:])]
        assert jump == pytest.approx(tr / ratio, rel=1e-3)
        hits += 1
    assert hits == len(splits)


def test_ipos_and_delistings(sim: VendorSimulator) -> None:
    m = sim.market
    ev = m.master_events
    assert (ev["change_type"] == "LISTING").sum() > 5
    assert (ev["change_type"] == "DELISTING").sum() >= 2
    assert set(m.delist_reason) - {""} <= {"ACQUIRED", "BANKRUPTCY"}
    ipo = ev[ev["change_type"] == "LISTING"].iloc[0]
    t = int(ipo["effective_idx"])
    assert ipo["security_id"] not in set(sim.clean_prices(m.sessions[t - 1])["SECID"])
    assert ipo["security_id"] in set(sim.clean_prices(m.sessions[t])["SECID"])
    master = _csv(sim.day_files(m.sessions[t])["security_master.csv.gz"])
    assert ipo["security_id"] in set(master.loc[master["CHANGE_TYPE"] == "LISTING", "SECID"])
    gone = ev[ev["change_type"] == "DELISTING"].iloc[0]
    t = int(gone["effective_idx"])
    assert gone["security_id"] in set(sim.clean_prices(m.sessions[t])["SECID"])
    assert gone["security_id"] not in set(sim.clean_prices(m.sessions[t + 1])["SECID"])
    # Survivorship: the universe at the end is not the universe at the start.
    first = set(sim.clean_prices(m.sessions[0])["SECID"])
    last = set(sim.clean_prices(m.sessions[-1])["SECID"])
    assert first - last and last - first


def test_ticker_change_and_initial_master(sim: VendorSimulator) -> None:
    m = sim.market
    first = _csv(sim.day_files(m.sessions[0])["security_master.csv.gz"])
    assert set(first["CHANGE_TYPE"]) == {"INITIAL"}
    assert len(first) == sim.config.universe_size
    ev = m.master_events
    change = ev[ev["change_type"] == "TICKER_CHANGE"].iloc[0]
    t = int(change["effective_idx"])
    before = sim.clean_prices(m.sessions[t - 1]).set_index("SECID")
    after = sim.clean_prices(m.sessions[t]).set_index("SECID")
    assert before.loc[change["security_id"], "TICKER"] == change["previous_ticker"]
    assert after.loc[change["security_id"], "TICKER"] == change["ticker"]
    assert (ev["change_type"] == "SECTOR_CHANGE").any()
    assert ev["security_id"].str.fullmatch(r"S\d{6}").all()


def test_fundamentals_lag_and_restatements(sim: VendorSimulator) -> None:
    f = sim.market.fundamentals
    assert {"revenue", "net_income", "book_equity", "total_assets", "operating_cash_flow"} <= set(
        f.columns
    )
    v1 = f[f["version"] == 1]
    lag = (v1["published_at"].dt.tz_convert(None).dt.normalize() - v1["fiscal_period_end"]).dt.days
    assert lag.min() >= 30 and lag.max() <= 66
    restated = f[f["version"] == 2]
    assert len(restated) > 10
    orig = v1.set_index(["security_id", "fiscal_period_end"])["published_at"]
    keys = pd.MultiIndex.from_frame(restated[["security_id", "fiscal_period_end"]])
    assert (restated["published_at"].to_numpy() > orig.loc[keys].to_numpy()).all()
    assert f["published_at"].is_monotonic_increasing
    clock = datetime(2023, 9, 1, tzinfo=UTC)
    seen = sim.fundamentals(until_clock=clock)
    assert (seen["published_at"] <= clock).all() and len(seen) > 0
    later = sim.fundamentals(since=clock, until_clock=clock + timedelta(days=90))
    assert (later["published_at"] > clock).all() and len(later) > 0


def _mean_rank_ic(score: np.ndarray, target: np.ndarray) -> float:
    s = pd.DataFrame(score).rank(axis=1)
    t = pd.DataFrame(target).where(np.isfinite(score)).rank(axis=1)
    return float(s.corrwith(t, axis=1).mean())


def test_planted_signal_strength(sim: VendorSimulator) -> None:
    m = sim.market
    target = m.forward_idio_z()[:-5]
    ic = _mean_rank_ic(m.sentiment[:-5].astype(np.float64), target)
    assert ic == pytest.approx(sim.config.signal_strength, abs=0.03)
    assert sim.signal.strength == sim.config.signal_strength and sim.signal.horizon == 5

    none = generate_market(replace(sim.config, signal_strength=0.0))
    ic0 = _mean_rank_ic(none.sentiment[:-5].astype(np.float64), target)
    assert abs(ic0) < 0.015
    # Same seed otherwise: only sentiment differs.
    np.testing.assert_array_equal(none.close, m.close)
    np.testing.assert_array_equal(none.volume, m.volume)
    pd.testing.assert_frame_equal(none.fundamentals, m.fundamentals)


def test_sentiment_frame_matches_rest_source(sim: VendorSimulator) -> None:
    clock = datetime(2023, 1, 6, 22, 0, tzinfo=UTC)
    frame = sim.sentiment(until_clock=clock)
    assert frame["date"].nunique() == 4  # Jan 3, 4, 5, 6 (16:30 New York on the 6th)
    src = sim.rest_sources["sentiment"]
    n = src.count_published_until(int(pd.Timestamp(clock).value))
    recs = src.records(0, n)
    assert len(recs) == len(frame)
    assert [r["sentiment_score"] for r in recs] == frame["sentiment_score"].tolist()


@pytest.mark.slow
def test_default_size_generates() -> None:
    # The demo's size (500 securities, 3 years). Its speed is measured by bench/ingest.py,
    # not asserted here: a wall-clock bound fails on a loaded machine, not on slow code.
    m = generate_market(
        MarketConfig(universe_size=500, start=date(2022, 1, 3), end=date(2024, 12, 31))
    )
    assert m.close.shape[0] == len(m.sessions) > 700
