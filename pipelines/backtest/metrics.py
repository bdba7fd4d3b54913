"""Performance metrics of a backtest from its daily book.

With NAV ``V_t`` (``V_0`` = starting capital) and daily return ``r_t = V_t / V_{t-1} − 1``:

* two return conventions, both named wherever shown: the **arithmetic** annualised return
  ``annual_return = 252 · mean(r)`` (what Sharpe uses) and the **geometric** one,
  ``cagr = (V_T / V_0)^(252 / T) − 1`` (what an investor compounds); annualised
  volatility ``= √252 · std(r)``, Sharpe ``= annual_return / volatility`` (risk-free
  rate 0; the book is cash-funded);
* Sortino, Calmar and a 95 % stationary-bootstrap interval of Sharpe
  (:mod:`pipelines.backtest.stats`, standard formulas from ``empyrical``);
* max drawdown ``= max_t (1 − V_t / max_{s≤t} V_s)``;
* turnover ``= mean_t(traded notional_t / V_t)`` (one-way, per day);
* costs: total execution shortfall + commission (currency) and in bps of traded notional;
* hit rate: share of sessions with ``r_t > 0`` among sessions with ``r_t ≠ 0``;
* IC: mean and IR (mean / std) of the daily rank IC of the scores vs next-day returns.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

PERIODS = 252


@dataclass(frozen=True)
class Metrics:
    """See module docstring. Fractions, not percent."""

    sessions: int
    total_return: float
    annual_return: float
    cagr: float
    annual_vol: float
    sharpe: float
    sharpe_ci_low: float
    sharpe_ci_high: float
    sortino: float
    calmar: float
    sharpe_tstat: float
    max_drawdown: float
    turnover: float
    total_cost: float
    cost_bps: float
    hit_rate: float
    mean_ic: float
    ic_ir: float

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def daily_frame(rows: list[dict[str, object]], initial_capital: float) -> pd.DataFrame:
    """The equity curve: ``date, nav, ret, pnl, cost, turnover, gross, ic`` per session."""
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(
            columns=["date", "nav", "ret", "pnl", "cost", "turnover", "gross", "ic"]
        )
    nav = frame["nav"].astype(float)
    prev = nav.shift(1).fillna(initial_capital)
    out = pd.DataFrame(
        {
            "date": frame["date"],
            "nav": nav,
            "ret": nav / prev - 1.0,
            "pnl": frame["pnl"].astype(float),
            "cost": frame["cost"].astype(float),
            "turnover": frame["traded_notional"].astype(float) / nav,
            "gross": frame["gross"].astype(float),
            "ic": frame["ic"].astype(float),
        }
    )
    return out.reset_index(drop=True)


def compute_metrics(daily: pd.DataFrame, initial_capital: float) -> Metrics:
    """:class:`Metrics` of an equity curve from :func:`daily_frame`."""
    n = len(daily)
    if n == 0:
        nan = math.nan
        return Metrics(
            0, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, 0.0, nan, nan, nan, nan
        )
    r = daily["ret"].to_numpy(dtype=float)
    nav = daily["nav"].to_numpy(dtype=float)
    mean, sd = float(np.mean(r)), float(np.std(r, ddof=1)) if n > 1 else math.nan
    ann_ret, ann_vol = mean * PERIODS, sd * math.sqrt(PERIODS)
    sharpe = ann_ret / ann_vol if ann_vol and math.isfinite(ann_vol) else math.nan
    peak = np.maximum.accumulate(np.concatenate([[initial_capital], nav]))[1:]
    traded = float((daily["turnover"] * daily["nav"]).sum())
    cost = float(daily["cost"].fillna(0.0).sum())
    moved = r[r != 0]
    ic = daily["ic"].dropna().to_numpy(dtype=float)
    ic_sd = float(np.std(ic, ddof=1)) if len(ic) > 1 else math.nan
    from pipelines.backtest.stats import performance

    perf = performance(pd.Series(r, index=pd.to_datetime(daily["date"])))
    return Metrics(
        sessions=n,
        total_return=float(nav[-1] / initial_capital - 1.0),
        annual_return=ann_ret,
        cagr=float((nav[-1] / initial_capital) ** (PERIODS / n) - 1.0) if nav[-1] > 0 else -1.0,
        annual_vol=ann_vol,
        sharpe=sharpe,
        sharpe_ci_low=perf.sharpe_low,
        sharpe_ci_high=perf.sharpe_high,
        sortino=perf.sortino,
        calmar=perf.calmar,
        # t-statistic of the mean daily return: "indistinguishable from zero" is |t| < 2.
        sharpe_tstat=sharpe * math.sqrt(n / PERIODS) if math.isfinite(sharpe) else math.nan,
        max_drawdown=float(np.max(1.0 - nav / peak)),
        turnover=float(daily["turnover"].mean()),
        total_cost=cost,
        cost_bps=cost / traded * 1e4 if traded else math.nan,
        hit_rate=float(np.mean(moved > 0)) if len(moved) else math.nan,
        mean_ic=float(np.mean(ic)) if len(ic) else math.nan,
        ic_ir=float(np.mean(ic)) / ic_sd if ic_sd and math.isfinite(ic_sd) else math.nan,
    )
