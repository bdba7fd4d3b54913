"""LakePriceSource's bars: the vectorised computation gives the per-security floats."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from pipelines.execution.prices import CostModel, LakePriceSource, SessionBar

pytestmark = pytest.mark.unit

DAY = dt.date(2024, 3, 28)


class FakePrices:
    """A store whose ``prices`` are one fixed table (what ``as_of`` would return)."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def as_of(self, table: str, **_: Any) -> pa.Table:
        assert table == "prices"
        return self.table


def _table(seed: int = 3) -> pa.Table:
    rng = np.random.default_rng(seed)
    rows: dict[str, list[Any]] = {c: [] for c in ("security_id", "valid_date", "open", "high")}
    rows |= {"low": [], "close": [], "volume": []}
    days = [DAY - dt.timedelta(days=i) for i in range(45)]
    for n in range(40):
        sid = f"S{n:03d}"
        # histories of every length (0 .. 44 rows before the day), some without the day
        history = days[1 : 1 + (n * 7) % 45]
        mine = ([DAY] if n % 9 != 4 else []) + history
        for d in mine:
            px = float(rng.uniform(5, 200))
            vol = float(rng.uniform(1e4, 1e6))
            rows["security_id"].append(sid)
            rows["valid_date"].append(d)
            rows["open"].append(math.nan if rng.random() < 0.05 else px * 1.001)
            rows["high"].append(px * 1.01)
            rows["low"].append(px * 0.99)
            rows["close"].append(px)
            rows["volume"].append(math.nan if rng.random() < 0.1 else vol)
    order = rng.permutation(len(rows["security_id"]))  # the lake's order is no order
    return pa.table({k: [v[i] for i in order] for k, v in rows.items()})


def _reference(table: pa.Table, day: dt.date, lookback: int) -> dict[str, SessionBar]:
    """The per-security computation the vectorised one replaced."""
    frame = table.to_pandas().sort_values(["security_id", "valid_date"])
    out: dict[str, SessionBar] = {}
    for sid, g in frame.groupby("security_id", sort=True):
        dates = list(g["valid_date"])
        if day not in dates:
            continue
        at = g.iloc[max(i for i, d in enumerate(dates) if d == day)]
        before = g[[d < day for d in dates]].iloc[-(lookback + 1) :]
        closes = before["close"].to_numpy(dtype=float)
        rets = np.diff(np.log(closes)) if len(closes) > 2 else np.array([])
        vols = before["volume"].to_numpy(dtype=float)
        close = float(at["close"])

        def num(x: float, default: float) -> float:
            return float(x) if math.isfinite(x) else default

        out[str(sid)] = SessionBar(
            open=num(at["open"], close),
            high=num(at["high"], close),
            low=num(at["low"], close),
            close=close,
            volume=num(at["volume"], 0.0),
            adv=float(np.nanmean(vols)) if len(vols) else None,
            sigma=float(np.std(rets, ddof=1)) if len(rets) > 1 else None,
        )
    return out


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


def test_bars_equal_the_per_security_computation() -> None:
    table = _table()
    for lookback in (20, 2, 1):
        got = LakePriceSource(FakePrices(table), lookback=lookback).session_all(DAY)  # type: ignore[arg-type]
        want = _reference(table, DAY, lookback)
        assert list(got) == list(want)
        for sid, bar in want.items():
            for f in ("open", "high", "low", "close", "volume", "vwap", "adv", "sigma"):
                x, y = getattr(got[sid], f), getattr(bar, f)
                assert _same(x, y) and type(x) is type(y), (lookback, sid, f, x, y)


def test_no_bars_before_the_session_is_published() -> None:
    table = _table()
    source = LakePriceSource(FakePrices(table))  # type: ignore[arg-type]
    assert source.session_all(DAY + dt.timedelta(days=1)) == {}


def _same(a: float, b: float) -> bool:
    return (a != a and b != b) or a == b


def test_scalar_cost_fraction_equals_the_array_functions() -> None:
    """The scalar cost (one fill's) is, bit for bit, what the optimizer's array cost
    functions give: random bars and models, and the edge values (no σ/ADV, NaN and
    infinite inputs, zero and negative spreads, ADV under the floor)."""
    rng = np.random.default_rng(7)
    specials = [None, 0.0, -1.0, math.nan, math.inf, 1e-300, 0.5, 1e308]
    models = [CostModel(), CostModel(half_spread=-0.0, impact_c=0.3), CostModel(half_spread=0.0)]
    models.append(CostModel(half_spread=math.nan, impact_c=2.0, default_sigma=0.05))
    checked = 0
    for _ in range(3000):
        model = models[int(rng.integers(len(models)))]

        def pick(scale: float) -> Any:
            if rng.random() < 0.2:
                return specials[int(rng.integers(len(specials)))]
            return float(rng.lognormal(0.0, 2.0) * scale)

        volume = pick(1e5)
        bar = SessionBar(
            open=10.0,
            high=11.0,
            low=9.0,
            close=10.5,
            volume=0.0 if volume is None else volume,
            adv=pick(1e5),
            sigma=pick(0.02),
        )
        qty = pick(1e3)
        price = pick(50.0)
        qty = 0.0 if qty is None else qty
        price = 1.0 if price is None else price
        with np.errstate(all="ignore"):
            want = model._cost_fraction_arrays(qty, price, bar)
        got = model.cost_fraction(qty, price, bar)
        assert type(got) is float
        assert _same(got, want), (model, bar, qty, price, got, want)
        checked += 1
    assert checked == 3000
