"""Session prices for simulated execution and TCA, and the execution cost model.

A :class:`PriceSource` returns, per security, one :class:`SessionBar` for a trade date:
open, high, low, close, volume, a VWAP proxy, and the trailing ADV (shares) and daily
volatility the impact model needs. Production reads the lake's ``prices`` table
(:class:`LakePriceSource`); tests use :class:`StaticPriceSource`.

**VWAP proxy.** The vendor delivers daily OHLCV only, so the day's VWAP is approximated by
the typical price ``(high + low + close) / 3``; a source with intraday data may set
``vwap`` to the true value. This is the benchmark the paper broker's VWAP/TWAP/POV algos
fill around and the one TCA measures against.

**Cost model** (:class:`CostModel`) is the optimizer's (``pipelines.portfolio.costs``):
with ``z`` the trade as a fraction of its own notional ``N = q·p`` (so ``z = 1``),
``a = half_spread`` and ``b = c·σ·sqrt(N / ADV$)``, the cost fraction is
``a + b = half_spread + c·σ·sqrt(q / ADV_shares)`` — the same half-spread plus 3/2-power
impact the optimizer charges, applied to each executed slice. Commission is charged
separately in currency per share, as brokers bill it.
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.execution.corporate_actions import BookAction, lake_corporate_actions
from pipelines.execution.delistings import Delisting, lake_delistings, session_of
from pipelines.lake.interface import Store
from pipelines.portfolio.costs import impact_coef, linear_cost_coef, transaction_cost


@dataclass(frozen=True)
class SessionBar:
    """One security's session: OHLCV, VWAP proxy, trailing ADV (shares), daily σ."""

    open: float
    high: float
    low: float
    close: float
    volume: float
    vwap: float | None = None
    adv: float | None = None
    sigma: float | None = None

    @property
    def vwap_or_proxy(self) -> float:
        """True VWAP when known, else the typical price (H + L + C) / 3."""
        if self.vwap is not None and math.isfinite(self.vwap) and self.vwap > 0:
            return self.vwap
        return (self.high + self.low + self.close) / 3.0


@runtime_checkable
class PriceSource(Protocol):
    """Session bars for a trade date; securities without a bar (yet) are simply absent."""

    def session(self, trade_date: dt.date, security_ids: Sequence[str]) -> dict[str, SessionBar]:
        """Bars for ``trade_date``; an empty dict means the session is not known yet."""
        ...


class StaticPriceSource:
    """In-memory bars: ``{trade_date: {security_id: SessionBar}}`` (tests, backtests)."""

    def __init__(
        self,
        bars: Mapping[dt.date, Mapping[str, SessionBar]] | None = None,
        delisted: Mapping[str, Delisting] | None = None,
        actions: Sequence[BookAction] = (),
    ) -> None:
        self.bars: dict[dt.date, dict[str, SessionBar]] = {
            d: dict(b) for d, b in (bars or {}).items()
        }
        #: Delistings in force (a test sets them when the session they take effect comes).
        self.delisted: dict[str, Delisting] = dict(delisted or {})
        #: Corporate actions (a test appends them when their ex-date comes) and the last
        #: session they are known through (default: the latest ex-date among them).
        self.actions: list[BookAction] = list(actions)
        self.through: dt.date | None = None

    def delistings(self, security_ids: Sequence[str]) -> dict[str, Delisting]:
        return {s: self.delisted[s] for s in security_ids if s in self.delisted}

    def corporate_actions(
        self, security_ids: Sequence[str], after: dt.date | None = None
    ) -> list[BookAction]:
        ids = set(security_ids)
        return sorted(
            (
                a
                for a in self.actions
                if a.security_id in ids and (after is None or a.ex_date > after)
            ),
            key=BookAction.sort_key,
        )

    def actions_through(self) -> dt.date:
        if self.through is not None:
            return self.through
        return max((a.ex_date for a in self.actions), default=dt.date.min)

    def add(self, trade_date: dt.date, security_id: str, bar: SessionBar) -> None:
        self.bars.setdefault(trade_date, {})[security_id] = bar

    def session(self, trade_date: dt.date, security_ids: Sequence[str]) -> dict[str, SessionBar]:
        day = self.bars.get(trade_date, {})
        return {s: day[s] for s in security_ids if s in day}


class LakePriceSource:
    """Bars from the lake's ``prices`` table, point in time.

    ``known_at`` fixes what the source may see (default: now, at each call), so a backtest
    fills only on prices that were published by then. ADV and σ are the mean volume and the
    standard deviation of close-to-close returns over the ``lookback`` sessions *before*
    the trade date (the optimizer sees the same history).
    """

    def __init__(
        self, lake: Store, *, known_at: dt.datetime | None = None, lookback: int = 20
    ) -> None:
        self.lake = lake
        self.known_at = known_at
        self.lookback = lookback

    def session(self, trade_date: dt.date, security_ids: Sequence[str]) -> dict[str, SessionBar]:
        if not security_ids:
            return {}
        return self._bars(
            trade_date, pc.field("security_id").isin(pa.array(list(security_ids), pa.string()))
        )

    def session_all(self, trade_date: dt.date) -> dict[str, SessionBar]:
        """Bars for ``trade_date`` of every security priced then: each bar is the one
        :meth:`session` gives for that security (a bar depends only on its own rows)."""
        return self._bars(trade_date, None)

    def _bars(self, trade_date: dt.date, filter: pc.Expression | None) -> dict[str, SessionBar]:
        known = self.known_at or dt.datetime.now(dt.UTC)
        # Calendar window generous enough for `lookback` sessions around holidays.
        start = trade_date - dt.timedelta(days=int(self.lookback * 1.6) + 10)
        table = self.lake.as_of(
            "prices",
            known_at=known,
            valid_at=(start, trade_date),
            columns=["security_id", "open", "high", "low", "close", "volume"],
            filter=filter,
        )
        if table.num_rows == 0:
            return {}
        day = np.datetime64(trade_date, "D")
        dates = table.column("valid_date").to_numpy(zero_copy_only=False).astype("datetime64[D]")
        if not (dates == day).any():
            return {}  # the session is not published yet: no bar for anyone
        # One sort, then every security's statistics at once: the securities are grouped by
        # the length of their lookback window, each group's windows are the rows of one
        # matrix, reduced along the rows by the numpy functions the per-security arrays
        # went through (np.nanmean, np.std), so the floats are the same (checked against
        # the per-security computation by tests/execution/test_prices.py).
        ranked = _security_ranks(table.column("security_id"))
        if ranked is None:
            frame = table.select(
                ["security_id", "valid_date", "open", "high", "low", "close", "volume"]
            )
            order = pc.sort_indices(
                frame, sort_keys=[("security_id", "ascending"), ("valid_date", "ascending")]
            )
            frame = frame.take(order)
            sids = frame.column("security_id").to_numpy(zero_copy_only=False).astype(str)
            dates = frame.column("valid_date").to_numpy(zero_copy_only=False)
            dates = dates.astype("datetime64[D]")
            cols = {
                c: frame.column(c).to_numpy(zero_copy_only=False).astype(float)
                for c in ("open", "high", "low", "close", "volume")
            }
            starts = np.concatenate([[0], np.flatnonzero(sids[1:] != sids[:-1]) + 1])
            starts = starts.astype(np.intp)
            names = sids[starts].tolist()
        else:
            # The same row order (security id, then date; the keys are unique, so every
            # sort agrees) from the ids' ranks in numpy, without the string sort and the
            # strings' conversion to a numpy array.
            ids, ranks = ranked
            order = np.lexsort((dates, ranks))
            ranks, dates = ranks[order], dates[order]
            cols = {
                c: table.column(c).to_numpy(zero_copy_only=False).astype(float)[order]
                for c in ("open", "high", "low", "close", "volume")
            }
            starts = np.concatenate([[0], np.flatnonzero(ranks[1:] != ranks[:-1]) + 1])
            starts = starts.astype(np.intp)
            names = ids.take(pa.array(ranks[starts])).to_pylist()
        # Within a security the rows ascend by date: its session rows follow the earlier ones.
        n_before = np.add.reduceat((dates < day).astype(np.intp), starts)
        n_through = np.add.reduceat((dates <= day).astype(np.intp), starts)
        priced = n_through > n_before  # the security has a row on the session
        starts, n_before, n_through = starts[priced], n_before[priced], n_through[priced]
        names = [n for n, keep in zip(names, priced.tolist(), strict=True) if keep]
        at = starts + n_through - 1  # its last row on the session
        window = np.minimum(n_before, self.lookback + 1)  # rows before the session it uses
        first = starts + n_before - window
        adv = np.full(len(starts), np.nan)
        sigma = np.full(len(starts), np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN volumes: NaN, as before
            for k in np.unique(window).tolist():
                if k == 0:
                    continue
                group = np.flatnonzero(window == k)
                rows = first[group][:, None] + np.arange(k, dtype=np.intp)[None, :]
                adv[group] = np.nanmean(cols["volume"][rows], axis=1)
                if k > 2:
                    rets = np.diff(np.log(cols["close"][rows]), axis=1)
                    sigma[group] = np.std(rets, axis=1, ddof=1)
        close = cols["close"][at]
        opens = _nums(cols["open"][at], close).tolist()
        highs = _nums(cols["high"][at], close).tolist()
        lows = _nums(cols["low"][at], close).tolist()
        volume = _nums(cols["volume"][at], np.zeros(len(at))).tolist()
        closes, advs, sigmas, ks = close.tolist(), adv.tolist(), sigma.tolist(), window.tolist()
        out: dict[str, SessionBar] = {}
        for i, sid in enumerate(names):
            out[sid] = SessionBar(
                open=opens[i],
                high=highs[i],
                low=lows[i],
                close=closes[i],
                volume=volume[i],
                adv=advs[i] if ks[i] else None,
                sigma=sigmas[i] if ks[i] > 2 else None,
            )
        return out

    def delistings(self, security_ids: Sequence[str]) -> dict[str, Delisting]:
        """Delistings of ``security_ids`` in force on the session of ``known_at`` (never
        later than today's: an announced delisting is not in force before its date, even
        when the source may see everything), as known then
        (:func:`~pipelines.execution.delistings.lake_delistings`)."""
        known = self.known_at or dt.datetime.now(dt.UTC)
        return lake_delistings(
            self.lake, security_ids, known_at=known, through=self.actions_through()
        )

    def corporate_actions(
        self, security_ids: Sequence[str], after: dt.date | None = None
    ) -> list[BookAction]:
        """Splits and dividends of ``security_ids`` with ``after < ex_date <=``
        :meth:`actions_through`, as known at ``known_at``."""
        known = self.known_at or dt.datetime.now(dt.UTC)
        return lake_corporate_actions(
            self.lake, security_ids, known_at=known, after=after, through=self.actions_through()
        )

    def actions_through(self) -> dt.date:
        """The session of ``known_at``, never later than today's: an announced action is
        not in force before its ex-date, even when the source may see everything."""
        known = self.known_at or dt.datetime.now(dt.UTC)
        return session_of(min(known, dt.datetime.now(dt.UTC)))


def _security_ranks(column: pa.ChunkedArray) -> tuple[pa.Array, np.ndarray] | None:
    """The distinct security ids in ascending (code point) order and each row's index
    among them; None when the column is not strings without nulls."""
    if column.null_count or not pa.types.is_string(column.type):
        return None
    ids = pc.unique(column)
    ids = ids.take(pc.sort_indices(ids))
    ranks = pc.index_in(column, value_set=ids).to_numpy(zero_copy_only=False)
    return ids, ranks.astype(np.intp)


def _nums(values: np.ndarray, default: np.ndarray) -> np.ndarray:
    """``values`` where finite, else ``default`` (elementwise)."""
    return np.where(np.isfinite(values), values, default)


@dataclass(frozen=True)
class CostModel:
    """Slippage + impact (optimizer conventions, see module doc) and commission.

    ``half_spread`` is a fraction of price; ``impact_c`` the optimizer's ``c``;
    ``default_sigma``/``default_adv`` apply when the bar carries none (ADV defaults to the
    day's own volume); ``commission_per_share`` is currency per share.
    """

    half_spread: float = 0.0005
    impact_c: float = 1.0
    commission_per_share: float = 0.0
    default_sigma: float = 0.02

    def cost_fraction(self, quantity: float, price: float, bar: SessionBar) -> float:
        """Expected cost of executing ``quantity`` shares, as a fraction of its notional."""
        if quantity <= 0 or price <= 0:
            return 0.0
        sigma = bar.sigma if bar.sigma is not None and bar.sigma > 0 else self.default_sigma
        adv_shares = bar.adv if bar.adv is not None and bar.adv > 0 else bar.volume
        notional = quantity * price
        # The optimizer's cost functions (linear_cost_coef, impact_coef, transaction_cost)
        # of one name trading its whole notional (z = 1), in scalars: the same IEEE
        # operations in the same order (a maximum keeps a NaN as np.maximum does, the
        # square root is correctly rounded in both, 1 ** 1.5 is 1), without building
        # four one-element arrays per fill (see _cost_fraction_arrays, tested equal).
        a = self.half_spread + 0.0
        a = a if a != a or a >= 0.0 else 0.0
        adv_value = max(adv_shares, 0.0) * price
        adv_value = adv_value if adv_value != adv_value or adv_value >= 1.0 else 1.0
        b = 1.0 * sigma * math.sqrt(notional / adv_value) * self.impact_c
        return a + b

    def _cost_fraction_arrays(self, quantity: float, price: float, bar: SessionBar) -> float:
        """:meth:`cost_fraction` through the optimizer's array functions (the reference
        the scalar form is tested against)."""
        if quantity <= 0 or price <= 0:
            return 0.0
        sigma = bar.sigma if bar.sigma is not None and bar.sigma > 0 else self.default_sigma
        adv_shares = bar.adv if bar.adv is not None and bar.adv > 0 else bar.volume
        notional = quantity * price
        a = linear_cost_coef(np.array([self.half_spread]), 0.0)
        b = impact_coef(np.array([sigma]), np.array([max(adv_shares, 0.0) * price]), notional)
        b = b * self.impact_c
        return transaction_cost(np.array([1.0]), a, b)

    def execution_price(self, side: str, quantity: float, base: float, bar: SessionBar) -> float:
        """``base`` moved against us by :meth:`cost_fraction` (buys pay up, sells receive less)."""
        frac = self.cost_fraction(quantity, base, bar)
        return base * (1.0 + frac) if side == "buy" else base * (1.0 - frac)

    def with_(self, **changes: float) -> CostModel:
        return replace(self, **changes)


__all__ = ["CostModel", "LakePriceSource", "PriceSource", "SessionBar", "StaticPriceSource"]
