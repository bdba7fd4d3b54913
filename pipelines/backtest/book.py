"""The book of a backtest over time: exposures, concentration, costs split and trades.

Read after a run from the loop's own tables (``positions``, ``fills``, ``tca``) and the
research panel, so the run's sessions pay nothing for them:

* **exposures** per session, as fractions of the session's NAV: long, short, gross, net,
  the number of positions, the largest position, the top-10 names' share of the gross,
  the effective number of names ``(Σ|w|)² / Σw²`` (N for an equal-weight book, 1 for a
  single name), and the net exposure per sector (the security master in force at the
  session as known then: the panel's ``sector``);
* **costs split** per session (:func:`cost_split`), from the TCA of the day's orders:
  delay (the market's move from the decision to the arrival price on the traded
  quantity), impact (fills against the arrival price), fees (commissions) and
  opportunity (the unfilled quantity's move to the close; not paid, but what not trading
  cost);
* **trades** (:func:`position_episodes`): a trade is a position's life in one security,
  from the session it is opened from flat to the session it is flat again (or changes
  side, which closes it and opens the next: that day's trading P&L is shared between the
  two in proportion to the quantity that closed and the one that opened); its P&L sums
  the security's daily P&L over those sessions: holding ``MV(t−1) · ret(t)`` (the panel's daily total return, so
  dividends and splits count) plus trading ``Σ side · qty · (close(t) − fill price) −
  commission``. Trades still open at the run's end are marked at its last close
  (``open`` is True). What no trade holds (cash, a delisted holding's proceeds after its
  last listed close) is the difference to the book's P&L, reported as ``coverage``.

The Monte Carlo of trade sequences is :func:`pipelines.backtest.stats.trade_monte_carlo`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Names in the concentration figure "top-N share of gross".
TOP_N = 10


def exposures(positions: pd.DataFrame, nav: pd.Series) -> pd.DataFrame:
    """Per session (index: ``nav``'s dates): ``long``, ``short`` (≤ 0), ``gross``, ``net``
    (fractions of NAV), ``positions``, ``largest`` (max |weight|), ``top10_share`` (of the
    gross) and ``effective_names``, from the book's ``positions`` rows (``date``,
    ``security_id``, ``market_value``; a zero or missing value is no position)."""
    columns = ["long", "short", "gross", "net", "positions", "largest", "top10_share"]
    columns.append("effective_names")
    if positions.empty or nav.empty:
        return pd.DataFrame(index=nav.index, columns=columns, dtype=float)
    mv = _wide(positions, "market_value").reindex(nav.index)
    w = mv.div(nav.astype(float), axis=0)
    a = w.abs()
    gross = a.sum(axis=1, min_count=1)
    sq = (w**2).sum(axis=1, min_count=1)
    top = np.sort(np.nan_to_num(a.to_numpy(float)), axis=1)[:, ::-1][:, :TOP_N].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = pd.DataFrame(
            {
                "long": w.clip(lower=0).sum(axis=1, min_count=1),
                "short": w.clip(upper=0).sum(axis=1, min_count=1),
                "gross": gross,
                "net": w.sum(axis=1, min_count=1),
                "positions": (a > 0).sum(axis=1).astype(float),
                "largest": a.max(axis=1),
                "top10_share": top / gross.to_numpy(float),
                "effective_names": gross**2 / sq,
            },
            index=nav.index,
        )
    return out.where(out["gross"] > 0).fillna({"positions": 0.0})


def sector_exposures(
    positions: pd.DataFrame, nav: pd.Series, sectors: pd.DataFrame
) -> pd.DataFrame:
    """Net exposure per sector and session (fractions of NAV; rows = ``nav``'s dates,
    columns = sectors, ``unknown`` for a security without one): ``sectors`` is wide (rows
    = sessions, columns = security ids), each row the sector in force at that session."""
    if positions.empty or nav.empty:
        return pd.DataFrame(index=nav.index)
    w = _wide(positions, "market_value").reindex(nav.index).div(nav.astype(float), axis=0)
    labels = sectors.reindex(index=w.index, columns=w.columns)
    stacked = pd.DataFrame(
        {
            "date": np.repeat(w.index.to_numpy(), w.shape[1]),
            "sector": labels.to_numpy(object).ravel(),
            "weight": w.to_numpy(float).ravel(),
        }
    )
    stacked = stacked[np.isfinite(stacked["weight"]) & (stacked["weight"] != 0)]
    stacked["sector"] = stacked["sector"].where(stacked["sector"].notna(), "unknown").astype(str)
    table = stacked.pivot_table(index="date", columns="sector", values="weight", aggfunc="sum")
    return table.reindex(nav.index).fillna(0.0).sort_index(axis=1)


COST_PARTS = ("delay", "impact", "fees", "opportunity")


def cost_split(tca: pd.DataFrame, dates: pd.Index) -> pd.DataFrame:
    """Per session (index ``dates``): ``delay``, ``impact``, ``fees``, ``opportunity`` and
    ``traded_notional`` (currency) summed over the day's TCA rows (``date``,
    ``delay_cost``, ``impact_cost``, ``commission``, ``opportunity_cost``,
    ``filled_quantity``, ``avg_fill_price``); a session without orders is 0."""
    out = pd.DataFrame(0.0, index=dates, columns=[*COST_PARTS, "traded_notional"])
    if tca.empty:
        return out
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(tca["date"]),
            "delay": tca["delay_cost"].astype(float),
            "impact": tca["impact_cost"].astype(float),
            "fees": tca["commission"].astype(float),
            "opportunity": tca["opportunity_cost"].astype(float),
            "traded_notional": (
                tca["filled_quantity"].astype(float) * tca["avg_fill_price"].astype(float)
            ).abs(),
        }
    )
    sums = frame.fillna(0.0).groupby("date").sum()
    return sums.reindex(dates).fillna(0.0)[out.columns]


@dataclass(frozen=True)
class Trades:
    """The run's trades (:func:`position_episodes`): one row each (``security_id``,
    ``side`` long/short, ``opened``, ``closed`` (the last session held), ``sessions``,
    ``pnl`` (currency), ``ret`` (P&L over the NAV of the session before it opened) and
    ``open`` (still held at the run's end)); ``coverage`` is Σ trade P&L over the book's
    P&L (1.0 when every P&L is in some trade)."""

    trades: pd.DataFrame
    coverage: float


def position_episodes(
    positions: pd.DataFrame,
    fills: pd.DataFrame,
    close: pd.DataFrame,
    ret: pd.DataFrame,
    nav: pd.Series,
    initial_capital: float,
) -> Trades:
    """The trades of a book (module docstring).

    ``positions``: ``date``, ``security_id``, ``quantity``, ``market_value`` per session;
    ``fills``: ``date``, ``security_id``, ``side`` (``buy`` or ``sell``), ``quantity``,
    ``price``, ``commission``;
    ``close`` and ``ret``: the panel's raw close and daily total return (wide); ``nav``:
    the book's NAV per session (its index is the run's sessions)."""
    columns = ["security_id", "side", "opened", "closed", "sessions", "pnl", "ret", "open"]
    dates = nav.index
    if positions.empty or len(dates) == 0:
        return Trades(pd.DataFrame(columns=columns), math.nan)
    qty = _wide(positions, "quantity").reindex(dates).fillna(0.0)
    mv = _wide(positions, "market_value").reindex(dates).fillna(0.0)
    ids = list(qty.columns)
    if not fills.empty:
        ids = sorted(set(ids) | set(fills["security_id"].astype(str)))
    qty = qty.reindex(columns=ids, fill_value=0.0)
    mv = mv.reindex(columns=ids, fill_value=0.0)
    px = close.reindex(index=dates, columns=ids).astype(float)
    r = ret.reindex(index=dates, columns=ids).astype(float).fillna(0.0)
    # holding: yesterday's value times today's total return
    held = mv.shift(1).fillna(0.0) * r
    trading = pd.DataFrame(0.0, index=dates, columns=ids)
    if not fills.empty:
        f = fills.assign(
            date=pd.to_datetime(fills["date"]),
            security_id=fills["security_id"].astype(str),
            sign=np.where(fills["side"].astype(str).str.lower() == "buy", 1.0, -1.0),
        )
        f = f[f["date"].isin(dates)]
        mark = pd.Series(px.stack(), name="close")
        f = f.join(mark, on=["date", "security_id"])
        f["pnl"] = f["sign"] * f["quantity"].astype(float) * (
            f["close"].astype(float) - f["price"].astype(float)
        ) - f["commission"].fillna(0.0).astype(float)
        trading = (
            f.groupby(["date", "security_id"])["pnl"]
            .sum()
            .unstack()
            .reindex(index=dates, columns=ids)
        ).fillna(0.0)
    hold, trade = held.to_numpy(float), trading.to_numpy(float)
    q = qty.to_numpy(float)
    nav_before = np.concatenate([[initial_capital], nav.to_numpy(float)[:-1]])
    rows: list[dict[str, object]] = []
    for j, sid in enumerate(ids):
        start, side, pnl = -1, 0.0, 0.0
        for t in range(len(dates)):
            now, day = q[t, j], hold[t, j] + trade[t, j]
            if start < 0:
                if now == 0.0 and day == 0.0:
                    continue
                start, side, pnl = t, math.copysign(1.0, now) if now else 1.0, 0.0
            if now != 0.0 and math.copysign(1.0, now) != side:
                # Changed side: the day's fills first close the old position, then open
                # the new one; their trading P&L is shared in those proportions.
                before = abs(q[t - 1, j]) if t else 0.0
                old = before / (before + abs(now))
                pnl += hold[t, j] + old * trade[t, j]
                rows.append(_trade(sid, side, dates, start, t, pnl, nav_before, False))
                start, side, pnl = t, math.copysign(1.0, now), (1.0 - old) * trade[t, j]
                continue
            pnl += day
            if now == 0.0:
                rows.append(_trade(sid, side, dates, start, t, pnl, nav_before, False))
                start = -1
        if start >= 0:
            rows.append(_trade(sid, side, dates, start, len(dates) - 1, pnl, nav_before, True))
    trades = pd.DataFrame(rows, columns=columns)
    book = float(nav.iloc[-1] - initial_capital)
    coverage = float(trades["pnl"].sum()) / book if book else math.nan
    return Trades(trades, coverage)


def _trade(
    sid: str,
    side: float,
    dates: pd.Index,
    start: int,
    end: int,
    pnl: float,
    nav_before: np.ndarray,
    still_open: bool,
) -> dict[str, object]:
    return {
        "security_id": sid,
        "side": "long" if side > 0 else "short",
        "opened": dates[start],
        "closed": dates[end],
        "sessions": end - start + 1,
        "pnl": pnl,
        "ret": pnl / nav_before[start] if nav_before[start] else math.nan,
        "open": still_open,
    }


def _wide(rows: pd.DataFrame, value: str) -> pd.DataFrame:
    """``rows`` (``date``, ``security_id``, ``value``) wide: rows = dates, columns = ids
    (the last row of a (date, security) pair wins)."""
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(rows["date"]),
            "security_id": rows["security_id"].astype(str),
            "v": rows[value].astype(float),
        }
    )
    return frame.pivot_table(index="date", columns="security_id", values="v", aggfunc="last")
