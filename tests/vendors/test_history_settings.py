"""The simulated history window comes from settings: years back from the end of this year,
or fixed dates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from pipelines.config import get_settings
from pipelines.vendors.config import MarketConfig, VendorConfig
from pipelines.vendors.simulator import VendorSimulator

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in ("HISTORY_START", "HISTORY_END", "HISTORY_YEARS", "SEED", "UNIVERSE_SIZE"):
        monkeypatch.delenv(f"ALPHAFACTORY_{name}", raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_default_is_history_years_back_from_the_end_of_this_year() -> None:
    m = MarketConfig.from_settings()
    assert m.end == dt.date(dt.date.today().year, 12, 31)
    assert (m.end - m.start).days == round(365.25 * 3)
    # Not anchored to today: the same market on any day of the year (issue 13).
    same_year = MarketConfig.from_settings(today=dt.date(m.end.year, 1, 2))
    assert same_year == MarketConfig.from_settings(today=dt.date(m.end.year, 11, 30)) == m
    assert (m.seed, m.universe_size, m.calendar) == (7, 500, "XNYS")


def test_a_1995_market_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHAFACTORY_HISTORY_START", "1994-06-01")
    monkeypatch.setenv("ALPHAFACTORY_HISTORY_END", "1995-12-29")
    get_settings.cache_clear()
    m = VendorConfig.from_settings().market
    assert (m.start, m.end) == (dt.date(1994, 6, 1), dt.date(1995, 12, 29))
    sim = VendorSimulator(m)
    assert sim.sessions[0] == dt.date(1994, 6, 1) and sim.sessions[-1] == dt.date(1995, 12, 29)
    assert dt.date(1995, 7, 4) not in sim.sessions  # a holiday in 1995


def test_end_only_and_arguments_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHAFACTORY_HISTORY_END", "1995-12-29")
    monkeypatch.setenv("ALPHAFACTORY_HISTORY_YEARS", "1")
    get_settings.cache_clear()
    m = MarketConfig.from_settings()
    assert (m.start, m.end) == (dt.date(1994, 12, 29), dt.date(1995, 12, 29))
    m = MarketConfig.from_settings(start=dt.date(1995, 1, 3), seed=3)
    assert (m.start, m.end, m.seed) == (dt.date(1995, 1, 3), dt.date(1995, 12, 29), 3)
