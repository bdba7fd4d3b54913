"""Honest statistics of a daily return series: standard metrics, uncertainty, luck.

* **Standard metrics** come from a maintained library (``empyrical-reloaded``), not from
  hand-written formulas: CAGR (``annual_return``, geometric), annualised volatility,
  Sharpe, Sortino, Calmar, rolling Sharpe, monthly returns. The arithmetic annual return
  (``252 · mean``) is named as such beside CAGR. Max drawdown is measured from the starting
  capital (a loss on the first day is a drawdown), which the library's function omits.
* **Uncertainty**: a stationary-bootstrap (Politis & Romano, 1994) confidence interval of
  the annualised Sharpe. Blocks of geometric length (mean ``block``) keep the serial
  dependence daily P&L has; the percentile interval covers the true Sharpe of a simulated
  strategy in about 95 % of seeds (``tests/backtest/test_stats.py``).
* **Monte Carlo** of results: block-bootstrap paths of the daily returns over a horizon,
  and resampled sequences of the run's trades (:func:`trade_monte_carlo`), each giving
  the distribution of Sharpe, max drawdown and terminal wealth, and the probability of a
  loss.
* **Luck**: the deflated Sharpe ratio (Bailey & López de Prado, 2014), the probability
  that the best of ``n_trials`` variants has a true Sharpe above zero once the selection
  among trials, the sample length and the returns' skew and kurtosis are accounted for.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

PERIODS = 252
_EULER_GAMMA = 0.5772156649015329


def _norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _norm_ppf(p: float) -> float:
    """Inverse standard normal CDF (Acklam's rational approximation, |error| < 1.2e-9)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"probability {p} outside (0, 1)")
    a = (-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.3577518672690,
         -30.66479806614716, 2.506628277459239)  # fmt: skip
    b = (-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972,
         -13.28068155288572)  # fmt: skip
    c = (-7.784894002430293e-03, -0.3223964580411365, -2.400758277161838, -2.549732539343734,
         4.374664141464968, 2.938163982698783)  # fmt: skip
    d = (7.784695709041462e-03, 0.3224671290700398, 2.445134137142996, 3.754408661907416)
    lo = 0.02425
    if p < lo:
        q = math.sqrt(-2 * math.log(p))
        num = ((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]
        return num / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    if p > 1 - lo:
        return -_norm_ppf(1 - p)
    q = p - 0.5
    r = q * q
    num = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q
    return num / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)


def annual_sharpe(returns: np.ndarray) -> float:
    """Annualised Sharpe of daily returns (risk-free 0, sample std with ddof=1)."""
    r = np.asarray(returns, dtype=float)
    if len(r) < 2:
        return math.nan
    sd = float(np.std(r, ddof=1))
    return float(np.mean(r)) / sd * math.sqrt(PERIODS) if sd > 0 else math.nan


def max_drawdown(returns: np.ndarray) -> float:
    """Largest peak-to-trough loss of the compounded path, from the starting capital (a
    positive fraction)."""
    wealth = np.concatenate([[1.0], np.cumprod(1.0 + np.asarray(returns, dtype=float))])
    peak = np.maximum.accumulate(wealth)
    return float(np.max(1.0 - wealth / peak))


def stationary_bootstrap_indices(
    n: int, n_boot: int, block: float, rng: np.random.Generator
) -> np.ndarray:
    """``n_boot × n`` resampled positions: blocks start at uniform positions and continue
    (wrapping around) with probability ``1 − 1/block`` per step."""
    idx = np.empty((n_boot, n), dtype=np.int64)
    idx[:, 0] = rng.integers(0, n, n_boot)
    restart = rng.random((n_boot, n)) < 1.0 / block
    fresh = rng.integers(0, n, (n_boot, n))
    for t in range(1, n):
        idx[:, t] = np.where(restart[:, t], fresh[:, t], (idx[:, t - 1] + 1) % n)
    return idx


@dataclass(frozen=True)
class SharpeInterval:
    """A bootstrap percentile interval of the annualised Sharpe."""

    sharpe: float
    low: float
    high: float
    level: float
    n_boot: int
    block: float


def sharpe_confidence_interval(
    returns: np.ndarray,
    *,
    level: float = 0.95,
    n_boot: int = 2000,
    block: float = 10.0,
    seed: int = 0,
) -> SharpeInterval:
    """Stationary-bootstrap percentile interval of the annualised Sharpe (module doc)."""
    r = np.asarray(returns, dtype=float)
    r = r[np.isfinite(r)]
    point = annual_sharpe(r)
    if len(r) < 10:
        return SharpeInterval(point, math.nan, math.nan, level, 0, block)
    idx = stationary_bootstrap_indices(len(r), n_boot, block, np.random.default_rng(seed))
    samples = r[idx]
    sd = samples.std(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpes = samples.mean(axis=1) / sd * math.sqrt(PERIODS)
    sharpes = sharpes[np.isfinite(sharpes)]
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(sharpes, [tail, 1.0 - tail])
    return SharpeInterval(point, float(low), float(high), level, n_boot, block)


@dataclass(frozen=True)
class MonteCarlo:
    """Distribution of outcomes over ``horizon`` sessions from block-bootstrap paths."""

    paths: int
    horizon: int
    sharpe_p05: float
    sharpe_p50: float
    sharpe_p95: float
    drawdown_p50: float
    drawdown_p95: float
    wealth_p05: float
    wealth_p50: float
    wealth_p95: float
    probability_of_loss: float

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def monte_carlo(
    returns: np.ndarray,
    *,
    horizon: int | None = None,
    paths: int = 2000,
    block: float = 10.0,
    seed: int = 0,
) -> MonteCarlo:
    """Resample the daily returns in blocks into ``paths`` paths of ``horizon`` sessions
    (default: as many as observed) and summarise Sharpe, max drawdown and terminal wealth
    (per unit of starting capital)."""
    r = np.asarray(returns, dtype=float)
    r = r[np.isfinite(r)]
    n = len(r)
    horizon = horizon or n
    if n < 10:
        nan = math.nan
        return MonteCarlo(0, horizon, nan, nan, nan, nan, nan, nan, nan, nan, nan)
    rng = np.random.default_rng(seed)
    idx = stationary_bootstrap_indices(n, paths, block, rng)
    if horizon != n:
        reps = -(-horizon // n)
        idx = np.concatenate([idx] * reps, axis=1)[:, :horizon]
    sharpes, drawdowns, terminal = _outcomes(r[idx], PERIODS)
    return _summary(paths, horizon, sharpes, drawdowns, terminal)


def _outcomes(samples: np.ndarray, per_year: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per path (a row of ``samples``, returns compounded in order): the annualised Sharpe
    (``per_year`` samples a year), the max drawdown from the starting capital and the
    terminal wealth per unit of it."""
    sd = samples.std(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpes = samples.mean(axis=1) / sd * math.sqrt(per_year)
    wealth = np.concatenate([np.ones((len(samples), 1)), np.cumprod(1.0 + samples, axis=1)], axis=1)
    drawdowns = np.max(1.0 - wealth / np.maximum.accumulate(wealth, axis=1), axis=1)
    return sharpes, drawdowns, wealth[:, -1]


def _summary(
    paths: int, horizon: int, sharpes: np.ndarray, drawdowns: np.ndarray, terminal: np.ndarray
) -> MonteCarlo:
    """The quantiles of the paths' outcomes (:func:`_outcomes`)."""
    s5, s50, s95 = np.nanquantile(sharpes, [0.05, 0.5, 0.95])
    d50, d95 = np.quantile(drawdowns, [0.5, 0.95])
    w5, w50, w95 = np.quantile(terminal, [0.05, 0.5, 0.95])
    return MonteCarlo(
        paths=paths,
        horizon=horizon,
        sharpe_p05=float(s5),
        sharpe_p50=float(s50),
        sharpe_p95=float(s95),
        drawdown_p50=float(d50),
        drawdown_p95=float(d95),
        wealth_p05=float(w5),
        wealth_p50=float(w50),
        wealth_p95=float(w95),
        probability_of_loss=float(np.mean(terminal < 1.0)),
    )


def trade_monte_carlo(
    trade_returns: np.ndarray,
    *,
    trades_per_year: float,
    horizon: int | None = None,
    paths: int = 2000,
    seed: int = 0,
) -> MonteCarlo:
    """Monte Carlo of trade sequences: ``paths`` sequences of ``horizon`` trades (default:
    one year's, ``trades_per_year``) drawn with replacement from the run's trades, each
    trade's return (its P&L over the NAV it opened at,
    :func:`pipelines.backtest.book.position_episodes`) compounded in the drawn order.
    Summarised like :func:`monte_carlo`, with ``horizon`` counted in trades: Sharpe is the
    trades' mean over their standard deviation times ``√trades_per_year``; drawdown and
    wealth are along the sequence.

    It asks what the daily bootstrap cannot: how much of the result rests on a few trades
    and on their order. It takes trades as independent and one after another, where a
    book holds hundreds at once whose P&Ls share the market's moves: read its spread
    beside the daily bootstrap's, not instead of it."""
    r = np.asarray(trade_returns, dtype=float)
    r = r[np.isfinite(r)]
    n = len(r)
    horizon = horizon or max(round(trades_per_year), 1)
    if n < 10 or trades_per_year <= 0:
        nan = math.nan
        return MonteCarlo(0, horizon, nan, nan, nan, nan, nan, nan, nan, nan, nan)
    rng = np.random.default_rng(seed)
    # In chunks of paths: a year of a 500-name book's trades is ~10^4 per path.
    chunk = max(1, 2_000_000 // horizon)
    parts = [
        _outcomes(
            r[rng.integers(0, n, size=(min(paths, lo + chunk) - lo, horizon))], trades_per_year
        )
        for lo in range(0, paths, chunk)
    ]
    sharpes, drawdowns, terminal = (np.concatenate(x) for x in zip(*parts, strict=True))
    return _summary(paths, horizon, sharpes, drawdowns, terminal)


def deflated_sharpe_ratio(
    returns: np.ndarray, *, n_trials: int, trial_sharpes_variance: float
) -> float:
    """Bailey & López de Prado's deflated Sharpe ratio of the selected variant's daily
    ``returns``: P(true Sharpe > SR₀), with SR₀ the expected maximum of ``n_trials`` null
    Sharpes whose (per-period) variance across trials is ``trial_sharpes_variance``.
    Values near 1 are significant; the best of many null variants is not."""
    r = np.asarray(returns, dtype=float)
    r = r[np.isfinite(r)]
    t = len(r)
    sd = float(np.std(r, ddof=1)) if t > 1 else 0.0
    if t < 3 or sd == 0 or n_trials < 1:
        return math.nan
    sr = float(np.mean(r)) / sd  # per period, as the paper's formula takes it
    z = (r - r.mean()) / r.std(ddof=0)
    skew = float(np.mean(z**3))
    kurt = float(np.mean(z**4))
    if n_trials == 1:
        sr0 = 0.0
    else:
        sr0 = math.sqrt(max(trial_sharpes_variance, 0.0)) * (
            (1 - _EULER_GAMMA) * _norm_ppf(1 - 1 / n_trials)
            + _EULER_GAMMA * _norm_ppf(1 - 1 / (n_trials * math.e))
        )
    denom = 1 - skew * sr + (kurt - 1) / 4 * sr**2
    if denom <= 0:
        return math.nan
    return _norm_cdf((sr - sr0) * math.sqrt(t - 1) / math.sqrt(denom))


@dataclass(frozen=True)
class Performance:
    """The standard metrics of a return series (module doc); fractions, not percent."""

    cagr: float
    annual_return_arithmetic: float
    annual_vol: float
    sharpe: float
    sharpe_low: float
    sharpe_high: float
    sortino: float
    calmar: float
    max_drawdown: float
    best_day: float
    worst_day: float

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def performance(returns: pd.Series, *, seed: int = 0) -> Performance:
    """:class:`Performance` of daily ``returns`` (indexed by date)."""
    import empyrical as ep  # a maintained library for the standard formulas

    r = returns.astype(float).dropna()
    if len(r) < 2:
        nan = math.nan
        return Performance(nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan)
    ci = sharpe_confidence_interval(r.to_numpy(), seed=seed)
    mdd = max_drawdown(r.to_numpy())
    cagr = float(ep.annual_return(r, period="daily"))
    return Performance(
        cagr=cagr,
        annual_return_arithmetic=float(r.mean() * PERIODS),
        annual_vol=float(ep.annual_volatility(r, period="daily")),
        sharpe=float(ep.sharpe_ratio(r, period="daily")),
        sharpe_low=ci.low,
        sharpe_high=ci.high,
        sortino=float(ep.sortino_ratio(r, period="daily")),
        calmar=cagr / mdd if mdd > 0 else math.nan,
        max_drawdown=mdd,
        best_day=float(r.max()),
        worst_day=float(r.min()),
    )


def monthly_returns(returns: pd.Series) -> pd.DataFrame:
    """Compounded returns per calendar month: years as rows, months 1–12 as columns."""
    import empyrical as ep

    r = returns.astype(float).dropna()
    r.index = pd.DatetimeIndex(pd.to_datetime(r.index))
    if r.empty:
        return pd.DataFrame()
    monthly = ep.aggregate_returns(r, "monthly")
    table = monthly.unstack()
    table.index.name, table.columns.name = "year", "month"
    return table


def rolling_window(sessions: int) -> int:
    """The trailing window of the report's rolling figures for a run of ``sessions``: a
    quarter (63), shorter for a short run (a third of it, at least 10)."""
    return min(63, max(10, sessions // 3))


def rolling_sharpe(returns: pd.Series, window: int = 63) -> pd.Series:
    """Annualised Sharpe over a trailing ``window`` of sessions."""
    import empyrical as ep

    r = returns.astype(float)
    r.index = pd.DatetimeIndex(pd.to_datetime(r.index))
    return ep.roll_sharpe_ratio(r, window=window).dropna()


def rolling_beta(returns: pd.Series, benchmark: pd.Series, window: int = 63) -> pd.Series:
    """Beta to ``benchmark`` over a trailing ``window`` of sessions (both series on the
    dates they share)."""
    import empyrical as ep

    both = pd.concat([returns.astype(float), benchmark.astype(float)], axis=1, join="inner")
    both.index = pd.DatetimeIndex(pd.to_datetime(both.index))
    both = both.replace([np.inf, -np.inf], np.nan).dropna()
    if len(both) < window:
        return pd.Series(dtype=float)
    beta = ep.roll_beta(both.iloc[:, 0], both.iloc[:, 1], window=window)
    return pd.Series(np.asarray(beta, dtype=float), index=both.index[window - 1 :]).dropna()


def drawdown_periods(returns: pd.Series, top: int = 5) -> pd.DataFrame:
    """The ``top`` deepest drawdowns: peak, trough and recovery dates, depth, length."""
    r = returns.astype(float).fillna(0.0)
    wealth = (1.0 + r).cumprod()
    peak = wealth.cummax()
    under = wealth < peak
    rows = []
    start = None
    for i, (day, flag) in enumerate(under.items()):
        if flag and start is None:
            start = i
        if (not flag or i == len(under) - 1) and start is not None:
            end = i
            window = wealth.iloc[start : end + 1]
            trough = window.idxmin()
            peak_day = wealth.index[start - 1] if start > 0 else wealth.index[0]
            depth = 1.0 - float(window.min() / peak.iloc[start])
            rows.append(
                {
                    "peak": peak_day,
                    "trough": trough,
                    "recovery": day if not flag else None,
                    "depth": depth,
                    "sessions": end - start + 1,
                }
            )
            start = None
    frame = pd.DataFrame(rows, columns=["peak", "trough", "recovery", "depth", "sessions"])
    return frame.sort_values("depth", ascending=False).head(top).reset_index(drop=True)


__all__ = [
    "MonteCarlo",
    "Performance",
    "SharpeInterval",
    "annual_sharpe",
    "deflated_sharpe_ratio",
    "drawdown_periods",
    "max_drawdown",
    "monte_carlo",
    "monthly_returns",
    "performance",
    "rolling_sharpe",
    "sharpe_confidence_interval",
    "stationary_bootstrap_indices",
]
