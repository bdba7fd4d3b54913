"""Synthetic point-in-time panels with a planted, tunable signal (tests & benchmarks).

Return model (per security i, day t)::

    r[t, i] = beta_i * m[t] + sigma_i * (k * a[t-1, i] + sqrt(1 - k^2) * eps[t, i])

where ``a`` is a persistent latent alpha (AR(1), phi = 0.97, unit variance),
``m`` the market return and ``k = signal_strength``. So the daily idiosyncratic
return has correlation ``k`` with yesterday's latent alpha, and ``k = 0`` means
no predictability at all. The alt-data field ``sentiment`` observes the alpha
with noise (``sentiment = a + N(0, 1)``), so features built on sentiment (and,
through the learned model, the model's scores) predict forward returns.

Everything else (prices with a 2:1 split, shares, volume, quarterly
fundamentals released with a lag, listing/delisting, sectors with one
reclassification) exists so that every standard feature has realistic inputs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.pit.panel import Panel

SECTORS: tuple[str, ...] = ("10", "15", "20", "25", "30", "35", "40", "45", "50", "55", "60")
_PHI = 0.97


def synthetic_panel(
    n_securities: int = 200, n_days: int = 500, seed: int = 0, signal_strength: float = 0.05
) -> Panel:
    """A realistic-shaped panel with a planted signal; deterministic in all arguments."""
    if not 0.0 <= signal_strength < 1.0:
        raise ValueError("signal_strength must be in [0, 1)")
    rng = np.random.default_rng(seed)
    T, N = n_days, n_securities
    dates = pd.bdate_range("2015-01-02", periods=T)
    secs = pd.Index([f"SEC{i:05d}" for i in range(N)], dtype=object)

    # listing window: most securities listed throughout, some IPO late / delist early
    start = np.where(rng.random(N) < 0.85, 0, rng.integers(0, max(T // 2, 1), N))
    end = np.where(rng.random(N) < 0.9, T, start + rng.integers(max(T // 4, 1), T + 1, N))
    t_idx = np.arange(T)[:, None]
    listed = (t_idx >= start[None, :]) & (t_idx < end[None, :])

    # returns
    market = rng.normal(3e-4, 0.01, T)
    beta = np.clip(rng.normal(1.0, 0.3, N), 0.2, 2.0)
    sigma = np.exp(rng.normal(np.log(0.015), 0.35, N))
    alpha = np.empty((T, N))
    alpha[0] = rng.standard_normal(N)
    shocks = rng.standard_normal((T, N)) * np.sqrt(1.0 - _PHI**2)
    for t in range(1, T):
        alpha[t] = _PHI * alpha[t - 1] + shocks[t]
    k = signal_strength
    prev_alpha = np.vstack([np.zeros((1, N)), alpha[:-1]])
    idio = sigma * (k * prev_alpha + np.sqrt(1.0 - k * k) * rng.standard_normal((T, N)))
    ret = beta * market[:, None] + idio
    ret[0] = 0.0
    adj_close = rng.uniform(10.0, 200.0, N) * np.cumprod(1.0 + ret, axis=0)

    # one 2:1 split for ~10% of names: raw close halves, shares double at the split
    split_day = np.where(rng.random(N) < 0.1, rng.integers(1, T, N), T)
    split_factor = np.where(t_idx < split_day[None, :], 2.0, 1.0)
    close = adj_close * split_factor
    shares = np.exp(rng.normal(np.log(1e8), 1.0, N)) / split_factor
    market_cap = close * shares
    turnover = np.exp(rng.normal(np.log(0.004), 0.5, N))
    volume = np.round(shares * turnover * np.exp(rng.normal(0.0, 0.4, (T, N))))
    dollar_volume = close * volume

    # quarterly fundamentals, released every 63 days at a security-specific phase
    quarter = (t_idx + rng.integers(0, 63, N)[None, :]) // 63
    n_q = int(quarter.max()) + 1
    btm = np.exp(rng.normal(np.log(0.5), 0.5, (n_q, N)))
    roe = rng.normal(0.10, 0.08, (n_q, N))
    lev = rng.uniform(1.5, 4.0, (n_q, N))
    sales = np.exp(rng.normal(np.log(1.0), 0.5, (n_q, N)))
    cols = np.broadcast_to(np.arange(N), (T, N))
    mcap_at_release = market_cap[np.minimum(quarter * 63, T - 1), cols]
    book = mcap_at_release * btm[quarter, cols]
    net_income = book * roe[quarter, cols]
    total_assets = book * lev[quarter, cols]
    revenue = book * sales[quarter, cols]
    ocf = net_income * (1.0 + rng.normal(0.0, 0.3, (n_q, N))[quarter, cols])

    sentiment = alpha + rng.standard_normal((T, N))
    sentiment[rng.random((T, N)) < 0.05] = np.nan

    # sectors: fixed, except a few names reclassified half-way
    sec_code = rng.integers(0, len(SECTORS), N)
    sector = np.broadcast_to(np.asarray(SECTORS, dtype=object)[sec_code], (T, N)).copy()
    moved = rng.random(N) < 0.02
    sector[T // 2 :, moved] = np.asarray(SECTORS, dtype=object)[
        (sec_code[moved] + 1) % len(SECTORS)
    ]

    seasoned = t_idx >= start[None, :] + 21
    in_universe = listed & seasoned & (close > 2.0)

    def frame(values: np.ndarray) -> pd.DataFrame:
        out = np.where(listed, values, np.nan).astype(np.float64)
        return pd.DataFrame(out, index=dates, columns=secs)

    ret_listed = np.where(t_idx > start[None, :], ret, np.nan)  # no return on listing day
    sector[~listed] = None
    sector_frame = pd.DataFrame(sector, index=dates, columns=secs)
    fields = {
        "close": frame(close),
        "adj_close": frame(adj_close),
        "ret": frame(ret_listed),
        "volume": frame(volume),
        "dollar_volume": frame(dollar_volume),
        "shares_outstanding": frame(shares * np.ones((T, 1))),
        "market_cap": frame(market_cap),
        "book_equity": frame(book),
        "net_income": frame(net_income),
        "revenue": frame(revenue),
        "total_assets": frame(total_assets),
        "operating_cash_flow": frame(ocf),
        "sentiment": frame(sentiment),
        "sector": sector_frame,
        "in_universe": pd.DataFrame(in_universe, index=dates, columns=secs),
    }
    return Panel(dates=dates, securities=secs, fields=fields)
