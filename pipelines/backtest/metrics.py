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

import datetime as dt
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipelines.backtest.book import Trades
from pipelines.backtest.stats import MonteCarlo, rolling_beta, rolling_window

if TYPE_CHECKING:
    from pipelines.lake import Lake

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
    """The equity curve: ``date, nav, ret, pnl, cost, turnover, gross, ic`` per session,
    and ``model_id`` (which model scored it) when the rows carry it."""
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
    if "model_id" in frame:
        # which model scored each session (rows of checkpoints written before it: none)
        out["model_id"] = frame["model_id"].fillna("").astype(str)
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


# --- benchmark-relative figures --------------------------------------------------------


@dataclass(frozen=True)
class BenchmarkRelative:
    """The book against one benchmark's daily returns (fractions, annualised with 252):
    ``excess_return`` = 252 · mean(r − b) (arithmetic), ``tracking_error`` = √252 ·
    std(r − b), ``information_ratio`` = excess / tracking error, ``beta`` = cov(r, b) /
    var(b) (``empyrical``), ``correlation``, and the benchmark's own CAGR."""

    benchmark: str
    sessions: int
    excess_return: float
    tracking_error: float
    information_ratio: float
    beta: float
    correlation: float
    benchmark_cagr: float

    def to_dict(self) -> dict[str, float | str | int]:
        return asdict(self)


def benchmark_relative(
    returns: pd.Series, benchmark: pd.Series, name: str = "benchmark"
) -> BenchmarkRelative:
    """:class:`BenchmarkRelative` over the dates both series have (finite values)."""
    import empyrical as ep

    both = pd.concat([returns.astype(float), benchmark.astype(float)], axis=1, join="inner")
    both = both.replace([np.inf, -np.inf], np.nan).dropna()
    n = len(both)
    if n < 3:
        nan = math.nan
        return BenchmarkRelative(name, n, nan, nan, nan, nan, nan, nan)
    r, b = both.iloc[:, 0], both.iloc[:, 1]
    active = r - b
    te = float(active.std(ddof=1)) * math.sqrt(PERIODS)
    excess = float(active.mean()) * PERIODS
    growth = float(np.prod(1.0 + b.to_numpy()))
    return BenchmarkRelative(
        benchmark=name,
        sessions=n,
        excess_return=excess,
        tracking_error=te,
        information_ratio=excess / te if te > 0 else math.nan,
        beta=float(ep.beta(r, b)),
        correlation=float(r.corr(b)),
        benchmark_cagr=growth ** (PERIODS / n) - 1.0 if growth > 0 else -1.0,
    )


def universe_benchmarks(returns: pd.DataFrame, market_cap: pd.DataFrame) -> pd.DataFrame:
    """Daily returns of the equal-weight and the cap-weighted universe (columns
    ``equal_weight``, ``cap_weighted``) from wide ``returns`` and ``market_cap`` (rows =
    sessions, columns = securities, NaN = not listed). Cap weights are the previous
    session's caps (known before the day's return); a session without them is NaN."""
    ret = returns.astype(float)
    cap = market_cap.reindex_like(ret).astype(float)
    equal = ret.mean(axis=1, skipna=True)
    weights = cap.shift(1).where(cap.shift(1) > 0)
    ok = weights.notna() & ret.notna()
    num = (weights * ret).where(ok).sum(axis=1, min_count=1)
    den = weights.where(ok).sum(axis=1, min_count=1)
    return pd.DataFrame({"equal_weight": equal, "cap_weighted": num / den})


# --- signal statistics -----------------------------------------------------------------


@dataclass(frozen=True)
class SignalStats:
    """The scores of each session against the next session's returns.

    ``ic`` is the daily Pearson correlation, ``rank_ic`` the Spearman one; their t-stats
    are mean / (std / √days); ``icir_annual`` = √252 · mean(rank IC) / std(rank IC);
    ``rank_autocorrelation`` is the mean Spearman correlation of consecutive sessions'
    scores (1 = the ranking never changes: low turnover); ``quantile_spread`` the
    cumulative return of the top minus the bottom quantile portfolio."""

    days: int
    ic_mean: float
    ic_tstat: float
    rank_ic_mean: float
    rank_ic_tstat: float
    icir_annual: float
    rank_autocorrelation: float
    quantile_spread: float

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def _finite_mean(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(np.mean(x)) if len(x) else math.nan


def _tstat(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return math.nan
    sd = float(np.std(x, ddof=1))
    return float(np.mean(x)) / (sd / math.sqrt(len(x))) if sd > 0 else math.nan


def signal_statistics(
    scores: pd.DataFrame, forward_returns: pd.DataFrame, quantiles: int = 5
) -> tuple[SignalStats, pd.DataFrame]:
    """:class:`SignalStats` and the quantile portfolios' cumulative returns.

    ``scores`` and ``forward_returns`` are wide (rows = sessions, columns = securities):
    row ``t`` of ``forward_returns`` is the return earned from session ``t`` to the next
    one. Quantile ``q`` (1 = lowest scores) holds its names equally weighted; the second
    frame has one column per quantile (cumulative return, rows = sessions)."""
    days = scores.index.intersection(forward_returns.index)
    cols = scores.columns.intersection(forward_returns.columns)
    s = scores.loc[days, cols].astype(float)
    f = forward_returns.loc[days, cols].astype(float)
    ic, rank_ic, autocorr = [], [], []
    bucket_returns: list[list[float]] = []
    previous: pd.Series | None = None
    for day in days:
        pair = pd.concat([s.loc[day], f.loc[day]], axis=1, keys=["s", "f"]).dropna()
        row = [math.nan] * quantiles
        if len(pair) >= max(5, quantiles):
            ic.append(float(pair["s"].corr(pair["f"])))
            rank_ic.append(float(pair["s"].rank().corr(pair["f"].rank())))
            labels = pd.qcut(pair["s"].rank(method="first"), quantiles, labels=False)
            means = pair["f"].groupby(labels).mean()
            row = [float(means.get(q, math.nan)) for q in range(quantiles)]
        bucket_returns.append(row)
        today = s.loc[day].dropna()
        if previous is not None:
            both = pd.concat([previous, today], axis=1, join="inner")
            if len(both) >= 5:
                autocorr.append(float(both.iloc[:, 0].rank().corr(both.iloc[:, 1].rank())))
        previous = today
    ic_a, rank_a = np.array(ic, dtype=float), np.array(rank_ic, dtype=float)
    buckets = pd.DataFrame(
        bucket_returns, index=days, columns=[f"Q{q + 1}" for q in range(quantiles)]
    )
    cumulative = (1.0 + buckets.fillna(0.0)).cumprod() - 1.0
    finite = rank_a[np.isfinite(rank_a)]
    rank_sd = float(np.std(finite, ddof=1)) if len(finite) > 1 else math.nan
    final = cumulative.to_numpy(dtype=float)[-1] if len(cumulative) else np.array([math.nan])
    spread = float(final[-1] - final[0])
    stats = SignalStats(
        days=len(rank_a),
        ic_mean=_finite_mean(ic_a),
        ic_tstat=_tstat(ic_a),
        rank_ic_mean=_finite_mean(rank_a),
        rank_ic_tstat=_tstat(rank_a),
        icir_annual=_finite_mean(rank_a) / rank_sd * math.sqrt(PERIODS)
        if rank_sd and math.isfinite(rank_sd)
        else math.nan,
        rank_autocorrelation=float(np.mean(autocorr)) if autocorr else math.nan,
        quantile_spread=spread,
    )
    return stats, cumulative


def sector_ic(
    scores: pd.DataFrame,
    forward_returns: pd.DataFrame,
    sectors: pd.DataFrame,
    min_names: int = 5,
) -> pd.DataFrame:
    """The signal's rank IC within each sector: per session, the Spearman correlation of
    the scores and the next session's returns among the names of one sector (as the
    security master stated it at that session, known at its cutoff: ``sectors``, wide like
    the others, so a name that changes sector counts in the one it had then), over
    sessions with at least ``min_names`` such names.

    One row per sector: ``sessions`` (with an IC), ``mean_rank_ic`` and ``rank_ic_tstat``
    (mean / (sd / √sessions)), sorted by sector."""
    days = scores.index.intersection(forward_returns.index).intersection(sectors.index)
    cols = scores.columns.intersection(forward_returns.columns).intersection(sectors.columns)
    columns = ["sector", "sessions", "mean_rank_ic", "rank_ic_tstat"]
    if not len(days) or not len(cols):
        return pd.DataFrame(columns=columns)
    long = pd.DataFrame(
        {
            "day": np.repeat(np.arange(len(days)), len(cols)),
            "s": scores.loc[days, cols].to_numpy(dtype=float).reshape(-1),
            "f": forward_returns.loc[days, cols].to_numpy(dtype=float).reshape(-1),
            "sector": sectors.loc[days, cols].to_numpy(dtype=object).reshape(-1),
        }
    ).dropna()
    keys = [long["day"], long["sector"].astype(str)]
    groups = long.groupby(keys, sort=True)
    long = long[groups["s"].transform("size").to_numpy() >= max(min_names, 3)]
    keys = [long["day"], long["sector"].astype(str)]
    groups = long.groupby(keys, sort=True)
    # Spearman = Pearson of the ranks within each (session, sector), in one vectorized pass
    rs, rf = groups["s"].rank(), groups["f"].rank()
    ds = rs - rs.groupby(keys).transform("mean")
    df = rf - rf.groupby(keys).transform("mean")
    num = (ds * df).groupby(keys).sum()
    den = ((ds * ds).groupby(keys).sum() * (df * df).groupby(keys).sum()).pow(0.5)
    ic = (num / den.where(den > 0)).dropna()
    rows = [
        {
            "sector": name,
            "sessions": len(values),
            "mean_rank_ic": _finite_mean(values.to_numpy()),
            "rank_ic_tstat": _tstat(values.to_numpy()),
        }
        for name, values in ic.groupby(level=1, sort=True)
    ]
    return pd.DataFrame(rows, columns=columns)


def load_run_scores(lake: Lake, run_id: str, start: dt.date, end: dt.date) -> pd.DataFrame:
    """The scores a backtest run decided on, wide (rows = sessions, columns = securities),
    from its ``stage_state`` rows (one read)."""
    import pickle

    import pyarrow.compute as pc

    from pipelines.timeline import LATEST

    rows = lake.as_of(
        "stage_state",
        known_at=LATEST,
        valid_at=(start, end),
        columns=["portfolio_id", "name", "version", "payload"],
        filter=(pc.field("portfolio_id") == run_id) & (pc.field("name") == "scores"),
    ).to_pylist()
    latest: dict[dt.date, tuple[int, bytes]] = {}
    for row in rows:
        day, version = row["valid_date"], int(row["version"])
        if day not in latest or version > latest[day][0]:
            latest[day] = (version, row["payload"])
    series = {}
    for day, (_, payload) in sorted(latest.items()):
        frame = pickle.loads(payload)  # written by this codebase's own research stage
        series[pd.Timestamp(day)] = frame.set_index("security_id")["score"].astype(float)
    return pd.DataFrame(series).T.sort_index() if series else pd.DataFrame()


@dataclass(frozen=True)
class Analysis:
    """What a backtest report adds when it can read the lake: benchmark-relative figures
    (equal-weight and cap-weighted universe) with the rolling beta to each, signal
    statistics, quantile portfolios, the rank IC by sector (:func:`sector_ic`), and the
    book over time (:mod:`pipelines.backtest.book`): exposures and concentration, net
    exposure per sector, costs split into delay, impact, fees and opportunity, the
    trades and a Monte Carlo of their sequences."""

    benchmarks: list[BenchmarkRelative]
    benchmark_returns: pd.DataFrame
    signal: SignalStats | None
    quantiles: pd.DataFrame
    sectors: pd.DataFrame = field(default_factory=pd.DataFrame)
    rolling_beta: pd.DataFrame = field(default_factory=pd.DataFrame)
    exposures: pd.DataFrame = field(default_factory=pd.DataFrame)
    sector_exposures: pd.DataFrame = field(default_factory=pd.DataFrame)
    costs: pd.DataFrame = field(default_factory=pd.DataFrame)
    trades: Trades | None = None
    trade_monte_carlo: MonteCarlo | None = None


def analyse_run(
    lake: Lake,
    run_id: str,
    daily: pd.DataFrame,
    quantiles: int = 5,
    initial_capital: float | None = None,
) -> Analysis:
    """:class:`Analysis` of run ``run_id`` whose equity curve is ``daily``
    (``initial_capital``: the NAV before the first session; default: the first session's
    NAV less its P&L)."""
    if daily.empty:
        return Analysis([], pd.DataFrame(), None, pd.DataFrame())
    from pipelines.pit.lake_panel import build_panel
    from pipelines.timeline import trading_calendar

    first = pd.Timestamp(daily["date"].iloc[0]).date()
    last = pd.Timestamp(daily["date"].iloc[-1]).date()
    # One session past the end: the last session's scores earn the next session's return.
    cal = trading_calendar()
    after = cal.offset(last, 1) if last < cal.last else last
    # One session before the start: the first session's cap weights are the day before's.
    before = cal.offset(first, -1) if first > cal.first else first
    panel = build_panel(lake, before, after)
    bench = universe_benchmarks(panel.ret, panel.market_cap)
    returns = pd.Series(daily["ret"].to_numpy(float), index=pd.to_datetime(daily["date"]))
    bench = bench.reindex(returns.index)
    rel = [benchmark_relative(returns, bench[c], c) for c in bench.columns]
    window = rolling_window(len(returns))
    betas = pd.DataFrame({c: rolling_beta(returns, bench[c], window) for c in bench.columns})
    # Row t of the panel: the security master in force at t as known at t's cutoff.
    sectors = _by_id(panel.field("sector"))
    ret = _by_id(panel.ret)
    if initial_capital is None:
        initial_capital = float(daily["nav"].iloc[0]) - float(daily["pnl"].iloc[0])
    book = _book(
        lake, run_id, (first, last), daily, _by_id(panel.close), ret, sectors, initial_capital
    )
    scores = load_run_scores(lake, run_id, first, last)
    if scores.empty:
        return Analysis(rel, bench, None, pd.DataFrame(), rolling_beta=betas, **book)
    forward = ret.shift(-1)
    stats, cumulative = signal_statistics(scores, forward, quantiles)
    return Analysis(
        rel,
        bench,
        stats,
        cumulative,
        sector_ic(scores, forward, sectors),
        rolling_beta=betas,
        **book,
    )


def _by_id(frame: pd.DataFrame) -> pd.DataFrame:
    """A wide panel field with its columns as the lake's security ids (strings), as the
    run's own tables and scores name them."""
    out = frame.copy()
    out.columns = out.columns.astype(str)
    return out


def _book(
    lake: Lake,
    run_id: str,
    span: tuple[dt.date, dt.date],
    daily: pd.DataFrame,
    close: pd.DataFrame,
    ret: pd.DataFrame,
    sectors: pd.DataFrame,
    initial_capital: float,
) -> dict[str, Any]:
    """The book-over-time fields of :class:`Analysis`, from the run's ``positions``,
    ``fills`` and ``tca`` rows over ``span`` as known now (``close``, ``ret``,
    ``sectors``: the panel's, by security id)."""
    from pipelines.backtest import book
    from pipelines.backtest.stats import trade_monte_carlo
    from pipelines.execution.records import read_day

    def rows(table: str) -> pd.DataFrame:
        frame = read_day(lake, table, span, run_id)
        return frame.rename(columns={"valid_date": "date"})

    positions, fills, tca = rows("positions"), rows("fills"), rows("tca")
    dates = pd.DatetimeIndex(pd.to_datetime(daily["date"]))
    nav = pd.Series(daily["nav"].to_numpy(float), index=dates)
    trades = book.position_episodes(positions, fills, close, ret, nav, initial_capital)
    per_year = len(trades.trades) / len(dates) * PERIODS if len(dates) else 0.0
    mc = trade_monte_carlo(trades.trades["ret"].to_numpy(float), trades_per_year=per_year)
    return {
        "exposures": book.exposures(positions, nav),
        "sector_exposures": book.sector_exposures(positions, nav, sectors),
        "costs": book.cost_split(tca, dates),
        "trades": trades,
        "trade_monte_carlo": mc,
    }
