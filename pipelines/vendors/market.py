"""Deterministic synthetic equity market (vectorized numpy).

Model
-----
Over the real XNYS sessions between ``start`` and ``end`` (``T`` sessions), ``N`` securities
exist at the start and about ``ipo_rate * N`` per year list later (IPOs), ``M`` in total.
Daily close-to-close total returns are

    r[t, i] = beta_i * f_mkt[t] + f_sector[t, sector(t, i)] + x_i · f_style[t] + e[t, i]

* ``f_mkt``: GARCH(1,1) volatility with Student-t(5) shocks (~1.1 %/day, small positive drift);
* ``f_sector``: 11 GICS sectors, GARCH(1,1)+t(5), ~0.6 %/day; a security's sector can change
  (reclassification) and the return model follows the reclassification;
* ``f_style``: size, value, quality (static standardized exposures ``x_i``), t(5), 0.3 %/day;
* ``e``: idiosyncratic, ``sigma_i * sqrt(h[t, i]) * z[t, i]`` with GARCH(1,1) variance ``h``
  (unconditional 1) and unit-variance Student-t(4) ``z`` (fat tails, vol clustering).

Survivorship: a security delists (its last trading day) when its total-return drawdown from
peak exceeds ``distress_drawdown`` (reason ``BANKRUPTCY``) or at an exponential random time
(``ACQUIRED``), whichever comes first. IPOs start mid-history.

Raw (unadjusted) prices: with ``D`` the cash dividend per old share going ex on ``t`` and
``k`` the split ratio (new shares per old share) effective on ``t`` (1 otherwise),

    close[t] = (close[t-1] * (1 + r[t]) - D) / k     i.e.   r[t] = (close[t]*k + D) / close[t-1] - 1

so raw prices jump by ``1/k`` on split ex-dates, as in a real unadjusted feed. Dividend amounts
are fixed at announcement (10–20 sessions before ex) from the announcement-day close, so they
carry no look-ahead.

Planted signal
--------------
Daily news sentiment for security ``i`` published at 16:30 New York time on session ``D`` is

    sentiment[D, i] = sqrt(1 - w²) * n[D, i] + w * u[D, i]

where ``n`` is i.i.d. standard normal noise (its own random stream), ``w = signal_strength``
and ``u[D, i] = sum(e[D+1..D+H, i]) / sqrt(sum(sigma_i² h[D+1..D+H, i]))`` is the security's
*standardized next-H-session idiosyncratic return* (``H = signal_horizon``, default 5). Hence
``corr(sentiment, u) = w`` by construction, and the cross-sectional rank IC between sentiment
and forward idiosyncratic returns is close to ``w`` (≈ 0.05 by default). With ``w = 0`` the
sentiment is exactly the noise ``n``: every other number is unchanged (each component draws
from its own seeded stream) and nothing in the data predicts future idiosyncratic returns.
News counts, fundamentals, corporate actions and master changes are independent of future
returns by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, time, timedelta

import numpy as np
import pandas as pd

from pipelines.timeline import trading_calendar
from pipelines.vendors.config import MarketConfig
from pipelines.vendors.instants import next_session_on_or_after, publish_instant

#: GICS sectors: (code, name, weight in the universe).
SECTORS: tuple[tuple[int, str, float], ...] = (
    (10, "Energy", 0.05),
    (15, "Materials", 0.06),
    (20, "Industrials", 0.14),
    (25, "Consumer Discretionary", 0.11),
    (30, "Consumer Staples", 0.06),
    (35, "Health Care", 0.13),
    (40, "Financials", 0.13),
    (45, "Information Technology", 0.14),
    (50, "Communication Services", 0.05),
    (55, "Utilities", 0.05),
    (60, "Real Estate", 0.08),
)
STYLE_FACTORS = ("size", "value", "quality")
SPLIT_RATIOS = ((2, 1), (3, 1), (3, 2), (1, 5))  # (new, old) shares
SENTIMENT_PUBLISH_TIME = time(16, 30)
FUNDAMENTALS_PUBLISH_TIME = time(7, 30)
TRADING_DAYS_PER_YEAR = 252

# Independent random streams per component: changing one knob (e.g. signal_strength)
# never shifts the draws of another component.
_S_STATIC, _S_FACTORS, _S_IDIO, _S_LIFE, _S_ACTIONS, _S_OHLC, _S_FUND, _S_SENT, _S_MASTER = range(
    1, 10
)
_S_SPECIAL = 10


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream])


@dataclass(frozen=True)
class SignalTruth:
    """The planted signal's true parameters (for tests and research sanity checks)."""

    strength: float
    horizon: int
    publish_time_local: time = SENTIMENT_PUBLISH_TIME
    #: The quantity sentiment is correlated with, in words.
    target: str = "standardized sum of idiosyncratic returns over sessions D+1..D+horizon"


@dataclass
class Market:
    """Everything the vendor knows. Arrays are ``(T, M)``: sessions × securities.

    Cells where a security is not listed (before IPO, after its last day) are NaN (floats)
    or 0 (volume, news counts).
    """

    config: MarketConfig
    sessions: list[date]
    security_ids: np.ndarray  # (M,) str, "S000123"
    ipo_idx: np.ndarray  # (M,) first session index (0 for the initial universe)
    last_idx: np.ndarray  # (M,) last trading session index (T-1 if still listed at end)
    delist_reason: np.ndarray  # (M,) "", "BANKRUPTCY" or "ACQUIRED"
    alive: np.ndarray  # (T, M) bool
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray  # raw, unadjusted
    volume: np.ndarray  # (T, M) int64 shares
    total_return: np.ndarray  # (T, M) float32, close-to-close incl. dividends
    idio_return: np.ndarray  # (T + H, M) float32 (H extra rows so forward returns exist)
    idio_vol: np.ndarray  # (T + H, M) float32 conditional sd of idio_return
    sentiment: np.ndarray  # (T, M) float32
    news_count: np.ndarray  # (T, M) int32
    ticker_code: np.ndarray  # (T, M) int32 index into ``tickers``
    name_code: np.ndarray  # (T, M) int32 index into ``names``
    sector_code: np.ndarray  # (T, M) int8 index into SECTORS
    tickers: np.ndarray
    names: np.ndarray
    exchange: np.ndarray  # (M,) str
    loadings: pd.DataFrame  # beta and style exposures per security
    factor_returns: pd.DataFrame  # (T, 1 + 11 + 3)
    corporate_actions: pd.DataFrame
    master_events: pd.DataFrame
    fundamentals: pd.DataFrame
    signal: SignalTruth
    _session_index: dict[date, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._session_index = {d: i for i, d in enumerate(self.sessions)}

    def session_index(self, day: date) -> int:
        """Index of ``day`` in :attr:`sessions`; ``KeyError`` if it is not a session."""
        return self._session_index[day]

    def forward_idio_z(self, horizon: int | None = None) -> np.ndarray:
        """``(T, M)`` standardized next-``horizon``-session idiosyncratic return ``u``."""
        h = horizon or self.config.signal_horizon
        return forward_idio_z(self.idio_return, self.idio_vol, len(self.sessions), h)


def forward_idio_z(eps: np.ndarray, sd: np.ndarray, n_sessions: int, horizon: int) -> np.ndarray:
    """``u[t] = sum(eps[t+1..t+h]) / sqrt(sum(sd[t+1..t+h]²))`` for ``t < n_sessions``.

    Windows running past the end of ``eps`` are truncated.
    """
    e = eps.astype(np.float64)
    c = np.vstack([np.zeros((1, e.shape[1])), np.cumsum(e, axis=0)])
    v = np.vstack([np.zeros((1, e.shape[1])), np.cumsum(sd.astype(np.float64) ** 2, axis=0)])
    t = np.arange(n_sessions)
    end = np.minimum(t + horizon + 1, e.shape[0])
    return (c[end] - c[t + 1]) / np.sqrt(v[end] - v[t + 1])


def _garch_t(
    rng: np.random.Generator,
    n_steps: int,
    width: int,
    vol: float,
    df: float,
    alpha: float = 0.08,
    beta: float = 0.90,
) -> tuple[np.ndarray, np.ndarray]:
    """GARCH(1,1) series with unit-variance Student-t shocks; returns (returns, cond. sd)."""
    z = rng.standard_t(df, size=(n_steps, width)) / np.sqrt(df / (df - 2.0))
    h = np.empty((n_steps, width))
    omega = 1.0 - alpha - beta
    prev_h = np.ones(width)
    prev_z2 = np.ones(width)
    # Sequential by nature, but each step is a vector op over all series.
    for t in range(n_steps):
        prev_h = omega + alpha * prev_z2 * prev_h + beta * prev_h
        h[t] = prev_h
        prev_z2 = np.minimum(z[t] ** 2, 25.0)  # cap so one 10-sigma day can't explode vol
    sd = vol * np.sqrt(h)
    return sd * z, sd


def _poisson_events(
    rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, rate_per_year: float
) -> tuple[np.ndarray, np.ndarray]:
    """Random event times per security in ``[lo, hi)`` at ``rate_per_year``.

    Returns (security index, session index) arrays, sorted by time, one event per
    (security, session) at most.
    """
    span = np.maximum(hi - lo, 0)
    counts = rng.poisson(rate_per_year * span / TRADING_DAYS_PER_YEAR)
    sec = np.repeat(np.arange(len(lo)), counts)
    t = lo[sec] + np.floor(rng.random(len(sec)) * span[sec]).astype(np.int64)
    keys = np.unique(t * len(lo) + sec)
    return keys % len(lo), keys // len(lo)


def _unique_tickers(rng: np.random.Generator, n: int) -> np.ndarray:
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        k = 2 * (n - len(out)) + 16
        lens = rng.choice([2, 3, 4], size=k, p=[0.1, 0.45, 0.45])
        chars = letters[rng.integers(0, 26, size=(k, 4))]
        for row, ln in zip(chars, lens, strict=True):
            s = "".join(row[:ln])
            if s not in seen:
                seen.add(s)
                out.append(s)
    return np.array(out[:n])


_SYL = ("al", "ver", "co", "tri", "nex", "or", "ion", "cap", "sol", "max", "gen", "tek", "ra", "lu")
_SUFFIX = ("Inc", "Corp", "Holdings", "Group", "Ltd", "Technologies", "Industries", "Partners")


def _names(rng: np.random.Generator, n: int) -> np.ndarray:
    syl = np.array(_SYL)
    parts = syl[rng.integers(0, len(syl), size=(n, 3))]
    nsyl = rng.integers(2, 4, size=n)
    suffix = np.array(_SUFFIX)[rng.integers(0, len(_SUFFIX), size=n)]
    return np.array(
        ["".join(p[:k]).capitalize() + " " + s for p, k, s in zip(parts, nsyl, suffix, strict=True)]
    )


def generate_market(cfg: MarketConfig) -> Market:
    """Generate the whole synthetic market for ``cfg`` (pure function of ``cfg``)."""
    sess = trading_calendar(cfg.calendar).sessions(cfg.start, cfg.end)
    T = len(sess)
    if T < 2:
        raise ValueError("need at least two trading sessions")
    H = cfg.signal_horizon
    Tx = T + H
    N = cfg.universe_size
    tt = np.arange(T)[:, None]

    # --- static characteristics -------------------------------------------------------
    rs = _rng(cfg.seed, _S_STATIC)
    n_ipo = int(rs.poisson(cfg.ipo_rate * N * T / TRADING_DAYS_PER_YEAR))
    M = N + n_ipo
    ipo_idx = np.zeros(M, dtype=np.int64)
    ipo_idx[N:] = np.sort(rs.integers(1, T, size=n_ipo))
    weights = np.array([w for _, _, w in SECTORS])
    sector0 = rs.choice(len(SECTORS), size=M, p=weights / weights.sum()).astype(np.int8)
    beta = np.clip(1.0 + 0.3 * rs.standard_normal(M), 0.2, 2.2)
    log_mcap0 = rs.normal(np.log(4e9), 1.2, size=M)
    size = (log_mcap0 - log_mcap0.mean()) / log_mcap0.std()
    styles = np.column_stack([size, rs.standard_normal(M), rs.standard_normal(M)])
    idio_sigma = np.clip(0.017 * np.exp(-0.2 * size + 0.3 * rs.standard_normal(M)), 0.006, 0.06)
    price0 = np.exp(rs.normal(np.log(40.0), 0.8, size=M))
    price0[N:] = rs.uniform(12.0, 30.0, size=n_ipo)  # IPO offer prices
    shares0 = np.round(np.exp(log_mcap0) / price0)
    turnover = np.exp(rs.normal(np.log(0.006), 0.4, size=M))
    payer = rs.random(M) < cfg.dividend_payer_fraction
    div_yield_q = rs.uniform(0.003, 0.012, size=M)
    exchange = np.where(rs.random(M) < 0.55, "XNYS", "XNAS")

    # --- master changes that feed the return model (sector reclassification) ----------
    rm = _rng(cfg.seed, _S_MASTER)
    sec_i, sec_t = _poisson_events(rm, ipo_idx + 1, np.full(M, T), cfg.sector_change_rate)
    sec_new = (sector0[sec_i] + rm.integers(1, len(SECTORS), size=len(sec_i))) % len(SECTORS)
    sector_code = np.broadcast_to(sector0, (T, M)).copy()
    for i, t, s in zip(sec_i, sec_t, sec_new, strict=True):
        sector_code[t:, i] = s

    # --- factor and idiosyncratic returns ------------------------------------------------
    rf = _rng(cfg.seed, _S_FACTORS)
    f_mkt, _ = _garch_t(rf, T, 1, vol=0.011, df=5.0)
    f_mkt = f_mkt[:, 0] + 0.0003
    f_sec, _ = _garch_t(rf, T, len(SECTORS), vol=0.006, df=5.0)
    f_sty = rf.standard_t(5.0, size=(T, len(STYLE_FACTORS))) / np.sqrt(5.0 / 3.0) * 0.003
    ri = _rng(cfg.seed, _S_IDIO)
    eps, eps_sd = _garch_t(ri, Tx, M, vol=1.0, df=4.0)
    eps *= idio_sigma
    eps_sd *= idio_sigma
    r = beta * f_mkt[:, None] + np.take_along_axis(f_sec, sector_code.astype(np.int64), axis=1)
    r += f_sty @ styles.T
    r += eps[:T]
    np.maximum(r, -0.95, out=r)

    # --- lifetimes: distress (drawdown) and acquisitions ---------------------------------
    listed_yet = tt >= ipo_idx
    log_tr = np.cumsum(np.where(listed_yet, np.log1p(r), 0.0), axis=0)
    drawdown = log_tr - np.maximum.accumulate(log_tr, axis=0)
    distress = (drawdown < np.log(1.0 - cfg.distress_drawdown)) & (tt >= ipo_idx + 60)
    first_distress = np.where(distress.any(axis=0), distress.argmax(axis=0), T)
    del log_tr, drawdown, distress
    rl = _rng(cfg.seed, _S_LIFE)
    acq = ipo_idx + 20 + np.ceil(rl.exponential(1.0 / cfg.acquisition_rate, size=M) * 252)
    acq = acq.astype(np.int64)
    end_idx = np.minimum(first_distress, acq)
    delisted = end_idx < T
    last_idx = np.where(delisted, end_idx, T - 1)
    delist_reason = np.where(
        ~delisted, "", np.where(first_distress <= acq, "BANKRUPTCY", "ACQUIRED")
    )
    alive = listed_yet & (tt <= last_idx)

    # --- corporate actions -----------------------------------------------------------------
    ra = _rng(cfg.seed, _S_ACTIONS)
    sp_i, sp_t = _poisson_events(ra, ipo_idx + 30, last_idx + 1, cfg.split_rate)
    ratio_pick = ra.choice(len(SPLIT_RATIOS), size=len(sp_i), p=[0.6, 0.12, 0.18, 0.1])
    sp_new = np.array([SPLIT_RATIOS[k][0] for k in ratio_pick], dtype=np.int64)
    sp_old = np.array([SPLIT_RATIOS[k][1] for k in ratio_pick], dtype=np.int64)
    sp_ann = sp_t - ra.integers(10, 26, size=len(sp_i))
    phase = ra.integers(30, 93, size=M)
    n_div = np.where(payer, np.maximum((last_idx - ipo_idx - phase) // 63 + 1, 0), 0)
    dv_i = np.repeat(np.arange(M), n_div)
    k_in_sec = np.arange(len(dv_i)) - np.repeat(np.cumsum(n_div) - n_div, n_div)
    dv_t = ipo_idx[dv_i] + phase[dv_i] + 63 * k_in_sec
    dv_ann = dv_t - ra.integers(10, 21, size=len(dv_i))
    # special dividends: same security, announcement and ex-date as a regular one, a
    # multiple of its yield (own stream: the knob at 0 draws nothing and changes nothing)
    dv_mult = np.ones(len(dv_i))
    if cfg.special_dividend_fraction > 0.0:
        rsd = _rng(cfg.seed, _S_SPECIAL)
        special = rsd.random(len(dv_i)) < cfg.special_dividend_fraction
        dv_i, dv_t, dv_ann = (np.concatenate([a, a[special]]) for a in (dv_i, dv_t, dv_ann))
        dv_mult = np.concatenate([dv_mult, rsd.uniform(2.0, 6.0, size=int(special.sum()))])
    dv_amt = np.zeros(len(dv_i))

    # --- raw price path (sequential over sessions, vectorized over securities) ------------
    ro = _rng(cfg.seed, _S_OHLC)
    gap = ro.standard_normal((T, M)) * (0.4 * idio_sigma)
    vol_noise = np.exp(ro.normal(0.0, 0.35, size=(T, M)))
    close = np.full((T, M), np.nan)
    open_ = np.full((T, M), np.nan)
    volume = np.zeros((T, M), dtype=np.int64)
    sp_by_ex = np.argsort(sp_t, kind="stable")
    sp_ptr = np.searchsorted(sp_t[sp_by_ex], np.arange(T + 1))
    dv_by_ex = np.argsort(dv_t, kind="stable")
    dv_ptr = np.searchsorted(dv_t[dv_by_ex], np.arange(T + 1))
    dv_by_ann = np.argsort(dv_ann, kind="stable")
    dv_ann_ptr = np.searchsorted(dv_ann[dv_by_ann], np.arange(T + 1))
    cum_split = np.ones(M)
    split_hist = np.ones((T, M), dtype=np.float32)  # cumulative split factor, for shares
    prev = price0.copy()
    abs_move = np.minimum(np.abs(eps[:T]) / idio_sigma, 5.0)
    for t in range(T):
        new = prev * (1.0 + r[t])
        prev_adj = prev.copy()
        ev = dv_by_ex[dv_ptr[t] : dv_ptr[t + 1]]
        if len(ev):
            np.subtract.at(new, dv_i[ev], dv_amt[ev])
            np.subtract.at(prev_adj, dv_i[ev], dv_amt[ev])
        ev = sp_by_ex[sp_ptr[t] : sp_ptr[t + 1]]
        if len(ev):
            k = sp_new[ev] / sp_old[ev]
            new[sp_i[ev]] /= k
            prev_adj[sp_i[ev]] /= k
            cum_split[sp_i[ev]] *= k
        np.maximum(new, 0.0001, out=new)
        # A minimum dividend on a collapsed price would push the reference below zero.
        np.maximum(prev_adj, 0.0001, out=prev_adj)
        close[t] = new
        open_[t] = prev_adj * np.exp(gap[t])
        split_hist[t] = cum_split
        ev = dv_by_ann[dv_ann_ptr[t] : dv_ann_ptr[t + 1]]
        if len(ev):
            dv_amt[ev] = np.maximum(
                np.round(dv_mult[ev] * div_yield_q[dv_i[ev]] * new[dv_i[ev]], 2), 0.01
            )
        prev = new
    volume = np.round(shares0 * split_hist * turnover * vol_noise * (1.0 + abs_move)).astype(
        np.int64
    )
    wick = np.abs(ro.standard_normal((2, T, M))) * (0.5 * idio_sigma)
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    del wick, gap, vol_noise, abs_move
    for arr in (open_, high, low, close):
        arr[~alive] = np.nan
    volume[~alive] = 0
    r32 = np.where(alive, r, np.nan).astype(np.float32)
    del r

    # --- sentiment (the planted signal) ---------------------------------------------------
    rsn = _rng(cfg.seed, _S_SENT)
    noise = rsn.standard_normal((T, M))
    news_count = rsn.poisson(np.exp(0.7 + 0.5 * size), size=(T, M)).astype(np.int32)
    news_count[~alive] = 0
    w = cfg.signal_strength
    if w == 0.0:
        sentiment = noise
    else:
        sentiment = np.sqrt(1.0 - w * w) * noise + w * forward_idio_z(eps, eps_sd, T, H)
    sentiment = np.where(alive, sentiment, np.nan).astype(np.float32)

    # --- security master ---------------------------------------------------------------------
    tk_i, tk_t = _poisson_events(rm, ipo_idx + 1, last_idx + 1, cfg.ticker_change_rate)
    tickers = _unique_tickers(rm, M + len(tk_i))
    names = _names(rm, M + len(tk_i))
    ticker_code = np.broadcast_to(np.arange(M, dtype=np.int32), (T, M)).copy()
    for j, (i, t) in enumerate(zip(tk_i, tk_t, strict=True)):
        ticker_code[t:, i] = M + j
    name_code = ticker_code  # a ticker change comes with a new company name
    keep = sec_t <= last_idx[sec_i]
    master_events = _master_events(
        sess,
        ids=np.array([f"S{i:06d}" for i in range(M)]),
        N=N,
        ipo_idx=ipo_idx,
        last_idx=last_idx,
        delisted=delisted,
        delist_reason=delist_reason,
        changes=[("TICKER_CHANGE", tk_i, tk_t), ("SECTOR_CHANGE", sec_i[keep], sec_t[keep])],
        ticker_code=ticker_code,
        sector_code=sector_code,
        tickers=tickers,
        names=names,
        exchange=exchange,
    )
    security_ids = np.array([f"S{i:06d}" for i in range(M)])

    corporate_actions = _corporate_actions(
        sess,
        security_ids,
        ticker_code,
        tickers,
        splits=(sp_i, sp_t, sp_ann, sp_new, sp_old),
        dividends=(dv_i, dv_t, dv_ann, dv_amt),
    )
    fundamentals = _fundamentals(
        cfg, sess, security_ids, ipo_idx, last_idx, log_mcap0, styles, sector0, shares0, split_hist
    )
    del split_hist

    factor_returns = pd.DataFrame(
        np.column_stack([f_mkt, f_sec, f_sty]),
        index=pd.DatetimeIndex(sess, name="date"),
        columns=["market", *[name for _, name, _ in SECTORS], *STYLE_FACTORS],
    )
    loadings = pd.DataFrame(
        {"beta": beta, **{s: styles[:, k] for k, s in enumerate(STYLE_FACTORS)}},
        index=pd.Index(security_ids, name="security_id"),
    )
    loadings["idio_sigma"] = idio_sigma
    loadings["initial_sector"] = [SECTORS[s][1] for s in sector0]
    return Market(
        config=cfg,
        sessions=sess,
        security_ids=security_ids,
        ipo_idx=ipo_idx,
        last_idx=last_idx,
        delist_reason=delist_reason,
        alive=alive,
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
        total_return=r32,
        idio_return=eps.astype(np.float32),
        idio_vol=eps_sd.astype(np.float32),
        sentiment=sentiment,
        news_count=news_count,
        ticker_code=ticker_code,
        name_code=name_code,
        sector_code=sector_code,
        tickers=tickers,
        names=names,
        exchange=exchange,
        loadings=loadings,
        factor_returns=factor_returns,
        corporate_actions=corporate_actions,
        master_events=master_events,
        fundamentals=fundamentals,
        signal=SignalTruth(strength=w, horizon=H),
    )


def _master_events(
    sess: list[date],
    *,
    ids: np.ndarray,
    N: int,
    ipo_idx: np.ndarray,
    last_idx: np.ndarray,
    delisted: np.ndarray,
    delist_reason: np.ndarray,
    changes: list[tuple[str, np.ndarray, np.ndarray]],
    ticker_code: np.ndarray,
    sector_code: np.ndarray,
    tickers: np.ndarray,
    names: np.ndarray,
    exchange: np.ndarray,
) -> pd.DataFrame:
    """One row per master change, carrying the full record state after the change."""
    M = len(ids)
    parts: list[tuple[str, np.ndarray, np.ndarray]] = [
        ("INITIAL", np.arange(N), np.zeros(N, dtype=np.int64)),
        ("LISTING", np.arange(N, M), ipo_idx[N:]),
        *changes,
        ("DELISTING", np.flatnonzero(delisted), last_idx[delisted]),
    ]
    order = {"INITIAL": 0, "LISTING": 0, "SECTOR_CHANGE": 1, "TICKER_CHANGE": 2, "DELISTING": 3}
    kind = np.concatenate([np.full(len(i), k) for k, i, _ in parts])
    sec = np.concatenate([i for _, i, _ in parts]).astype(np.int64)
    t = np.concatenate([t for _, _, t in parts]).astype(np.int64)
    rank = np.array([order[k] for k in kind], dtype=np.int64)
    o = np.lexsort((rank, sec, t))
    kind, sec, t = kind[o], sec[o], t[o]
    sess_arr = np.array(sess, dtype="datetime64[D]")
    is_delist = kind == "DELISTING"
    prev_t = np.maximum(t - 1, 0)
    prev_ticker = np.where(kind == "TICKER_CHANGE", tickers[ticker_code[prev_t, sec]], "")
    sc = sector_code[t, sec]
    return pd.DataFrame(
        {
            "security_id": ids[sec],
            "effective_idx": t,
            "effective_date": sess_arr[t],
            "change_type": kind,
            "ticker": tickers[ticker_code[t, sec]],
            "previous_ticker": prev_ticker,
            "name": names[ticker_code[t, sec]],
            "sector_code": np.array([SECTORS[k][0] for k in sc], dtype=np.int64),
            "sector": np.array([SECTORS[k][1] for k in sc]),
            "exchange": exchange[sec],
            "currency": "USD",
            "listing_date": sess_arr[ipo_idx[sec]],
            "delisting_date": np.where(is_delist, sess_arr[t], np.datetime64("NaT")),
            "delisting_reason": np.where(is_delist, delist_reason[sec], ""),
            "status": np.where(is_delist, "DELISTED", "ACTIVE"),
        }
    )


def _corporate_actions(
    sess: list[date],
    ids: np.ndarray,
    ticker_code: np.ndarray,
    tickers: np.ndarray,
    *,
    splits: tuple[np.ndarray, ...],
    dividends: tuple[np.ndarray, ...],
) -> pd.DataFrame:
    """Splits and cash dividends, one row each, ordered by announcement."""
    sp_i, sp_t, sp_ann, sp_new, sp_old = splits
    dv_i, dv_t, dv_ann, dv_amt = dividends
    sess_arr = np.array(sess, dtype="datetime64[D]")
    n_sp, n_dv = len(sp_i), len(dv_i)
    sec = np.concatenate([sp_i, dv_i]).astype(np.int64)
    ex = np.concatenate([sp_t, dv_t]).astype(np.int64)
    ann = np.concatenate([sp_ann, dv_ann]).astype(np.int64)
    kind = np.array(["SPLIT"] * n_sp + ["CASH_DIVIDEND"] * n_dv)
    o = np.lexsort((kind, sec, ann))
    sec, ex, ann, kind = sec[o], ex[o], ann[o], kind[o]
    split_to = np.concatenate([sp_new, np.zeros(n_dv, dtype=np.int64)])[o]
    split_from = np.concatenate([sp_old, np.zeros(n_dv, dtype=np.int64)])[o]
    amount = np.concatenate([np.zeros(n_sp), dv_amt])[o]
    is_div = kind == "CASH_DIVIDEND"
    ex_dates = sess_arr[ex]
    return pd.DataFrame(
        {
            "action_id": [f"CA{k:07d}" for k in range(len(sec))],
            "security_id": ids[sec],
            "ticker": tickers[ticker_code[ann, sec]],
            "action_type": kind,
            "announce_idx": ann,
            "announce_date": sess_arr[ann],
            "ex_idx": ex,
            "ex_date": ex_dates,
            "pay_date": np.where(is_div, ex_dates + np.timedelta64(14, "D"), np.datetime64("NaT")),
            "split_to": split_to,
            "split_from": split_from,
            "dividend_amount": np.where(is_div, amount, np.nan),
            "currency": "USD",
        }
    )


def _fundamentals(
    cfg: MarketConfig,
    sess: list[date],
    ids: np.ndarray,
    ipo_idx: np.ndarray,
    last_idx: np.ndarray,
    log_mcap0: np.ndarray,
    styles: np.ndarray,
    sector0: np.ndarray,
    shares0: np.ndarray,
    split_hist: np.ndarray,
) -> pd.DataFrame:
    """Quarterly fundamentals (USD millions) with report lags and restatements.

    Fiscal quarters are calendar quarters, from a year before ``start``. Reports appear
    30–60 calendar days after period end (rolled to the next session, 07:30 New York) while
    the security is listed; a fraction get a later ``version`` 2 (restatement).
    """
    rng = _rng(cfg.seed, _S_FUND)
    M = len(ids)
    q_ends = pd.date_range(cfg.start - timedelta(days=366), cfg.end, freq="QE").date
    Q = len(q_ends)
    sess_arr = np.array(sess, dtype="datetime64[D]")
    q_arr = np.array(q_ends, dtype="datetime64[D]")
    cal = trading_calendar(cfg.calendar)
    # Reports of the year before ``start`` are published from ~500 days back (never before
    # the calendar's first date).
    pub_cal = cal.sessions(max(cfg.start - timedelta(days=500), cal.start), cfg.end)
    pub_arr = np.array(pub_cal, dtype="datetime64[D]")

    # Book equity: slow random walk, independent of returns (no look-ahead by construction).
    value = styles[:, 1]
    pb = np.exp(0.9 - 0.4 * value + 0.3 * rng.standard_normal(M))
    log_book = np.log(np.exp(log_mcap0) / pb / 1e6)[:, None] + np.cumsum(
        rng.normal(0.012, 0.035, size=(M, Q)), axis=1
    )
    book = np.exp(log_book)
    fin = np.array([SECTORS[s][0] == 40 for s in sector0])
    lev = np.where(fin, rng.uniform(8.0, 12.0, M), rng.uniform(1.5, 4.0, M))[:, None]
    assets = book * lev * np.exp(rng.normal(0.0, 0.02, size=(M, Q)))
    asset_turn = rng.uniform(0.05, 0.35, M)[:, None]
    revenue = assets * asset_turn * np.exp(rng.normal(0.0, 0.04, size=(M, Q)))
    margin = (rng.normal(0.08, 0.05, M) + 0.03 * styles[:, 2])[:, None]
    net_income = revenue * (margin + rng.normal(0.0, 0.03, size=(M, Q)))
    ocf = net_income * 1.1 + revenue * rng.normal(0.02, 0.03, size=(M, Q))
    q_sess = np.searchsorted(sess_arr, q_arr, side="right") - 1  # last session <= period end
    split_at_q = np.where(q_sess >= 0, split_hist[np.maximum(q_sess, 0)].T, 1.0)
    shares = np.round(shares0[:, None] * split_at_q)
    lag = rng.integers(30, 61, size=(M, Q))
    pub_day = q_arr[None, :] + lag.astype("timedelta64[D]")
    pub_idx = next_session_on_or_after(pub_day.ravel(), pub_cal).reshape(M, Q)
    listing = sess_arr[ipo_idx][:, None]
    last_day = sess_arr[last_idx][:, None]
    ok_pub = pub_idx < len(pub_cal)
    pub_date = pub_arr[np.minimum(pub_idx, len(pub_cal) - 1)]
    valid = ok_pub & (q_arr[None, :] >= listing - np.timedelta64(91, "D")) & (pub_date <= last_day)
    # Initial universe existed before the simulation start: report all pre-start quarters.
    valid |= ok_pub & (np.arange(M) < cfg.universe_size)[:, None] & (pub_date <= last_day)
    si, qi = np.nonzero(valid)

    def frame(version: int, pub: np.ndarray, scale: dict[str, np.ndarray]) -> pd.DataFrame:
        published_at = [publish_instant(d, FUNDAMENTALS_PUBLISH_TIME) for d in pub.astype(object)]
        return pd.DataFrame(
            {
                "security_id": ids[si_v],
                "fiscal_period_end": q_arr[qi_v],
                "fiscal_year": q_arr[qi_v].astype("datetime64[Y]").astype(int) + 1970,
                "fiscal_quarter": (q_arr[qi_v].astype("datetime64[M]").astype(int) % 12) // 3 + 1,
                "version": version,
                "published_at": pd.to_datetime(published_at, utc=True),
                "currency": "USD",
                "revenue": np.round(revenue[si_v, qi_v] * scale["revenue"], 3),
                "net_income": np.round(net_income[si_v, qi_v] * scale["net_income"], 3),
                "book_equity": np.round(book[si_v, qi_v] * scale["book_equity"], 3),
                "total_assets": np.round(assets[si_v, qi_v], 3),
                "operating_cash_flow": np.round(ocf[si_v, qi_v], 3),
                "shares_outstanding": shares[si_v, qi_v].astype(np.int64),
                "is_restatement": version > 1,
            }
        )

    si_v, qi_v = si, qi
    one = np.ones(len(si))
    original = frame(1, pub_date[si, qi], {"revenue": one, "net_income": one, "book_equity": one})
    # Restatements: a later version of the same fiscal period, still while listed.
    restate = rng.random(len(si)) < cfg.restatement_fraction
    delay = rng.integers(20, 121, size=len(si)).astype("timedelta64[D]")
    r_idx = next_session_on_or_after(pub_date[si, qi] + delay, pub_cal)
    r_ok = restate & (r_idx < len(pub_cal))
    r_date = pub_arr[np.minimum(r_idx, len(pub_cal) - 1)]
    r_ok &= r_date <= last_day[si, 0]
    si_v, qi_v = si[r_ok], qi[r_ok]
    k = int(r_ok.sum())
    restated = frame(
        2,
        r_date[r_ok],
        {
            "revenue": 1.0 + rng.normal(0.0, 0.02, k),
            "net_income": 1.0 + rng.normal(0.0, 0.10, k),
            "book_equity": 1.0 + rng.normal(0.0, 0.01, k),
        },
    )
    out = pd.concat([original, restated], ignore_index=True)
    out = out.sort_values(
        ["published_at", "security_id", "fiscal_period_end", "version"], kind="stable"
    )
    return out.reset_index(drop=True)
