"""Fundamental factor risk model (Barra-style), estimated by cross-sectional regression.

Model
-----
For security ``i`` on day ``t`` (returns are simple daily returns, in fractions)::

    r_{t,i} = Σ_k X_{t-1,i,k} f_{t,k} + u_{t,i}

* ``X_{t-1}`` — exposures known at the close of ``t-1`` (no look-ahead):

  - ``market``: 1 for every security (the intercept / market factor);
  - ``sector_<name>``: one-hot industry membership (static labels);
  - style factors (``size``, ``momentum``, ``value``, ``volatility``, ``liquidity``, ... —
    whatever columns are given): raw values standardized per date to cap-weighted mean 0
    and equal-weighted standard deviation 1, winsorized at ±``winsor`` σ. A missing style
    value (e.g. a new listing without enough history) is set to 0 = the cap-weighted mean.

* ``f_t`` — factor returns by weighted least squares with regression weights ``sqrt(cap)``
  (Barra: residual variance is roughly ∝ 1/sqrt(cap)). The market column equals the sum of
  the sector columns, so the design is rank-deficient; we resolve it with the linear
  constraint ``Σ_s c_s f_s = 0`` where ``c_s`` is the cap weight of sector ``s`` in the
  regression universe that day. Then ``f_market`` is the return of the cap-weighted
  market (up to style tilts) and sector factors are returns *relative* to the market.
  The constraint is imposed by reparametrization ``f = R g`` (last active sector
  eliminated), solved as an ordinary WLS in ``g``.

* ``F`` — factor covariance: exponentially weighted (half-life ``factor_halflife`` days,
  zero mean) with optional Newey–West autocorrelation correction over ``newey_west_lags``
  lags (Bartlett weights), then symmetrized. Units: daily return².

* ``D`` — specific variance: EWMA (half-life ``specific_halflife``) of squared residuals
  over the days each security traded, then Bayesian shrinkage toward the cap-weighted
  mean specific volatility of its (sector × size-tercile) bucket::

      σ̂_i = v_i σ̄_b + (1 − v_i) σ_i,     v_i = q|σ_i − σ̄_b| / (Δ_b + q|σ_i − σ̄_b|)

  with ``Δ_b`` the cross-sectional std of σ within the bucket. Securities with fewer than
  ``min_history`` residual observations (new listings) are blended toward the bucket
  prior in proportion to their missing history: ``σ_i ← ω σ_i + (1-ω) σ̄_b``,
  ``ω = n_obs/min_history``; with no history they get the bucket prior.

Total covariance ``Σ = B F Bᵀ + diag(D)`` is never materialized (N×N); everything below
works in factor form, ``O(N K + K²)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from pipelines.portfolio.errors import PortfolioInputError, UnknownSecurityError

MARKET = "market"
SECTOR_PREFIX = "sector_"


def is_structural_factor(name: str) -> bool:
    """Market and sector factors: 0/1 exposures that change only with the universe (the
    others are style factors, standardized characteristics that move every day)."""
    return name == MARKET or name.startswith(SECTOR_PREFIX)


FloatArray = np.ndarray


@dataclass(frozen=True)
class RiskModelConfig:
    """Estimation settings (all horizons in trading days)."""

    factor_halflife: float = 90.0
    specific_halflife: float = 45.0
    newey_west_lags: int = 0
    # Bayesian shrinkage intensity q (Menchero et al. use ~0.1–0.3).
    shrinkage_q: float = 0.2
    min_history: int = 20
    size_buckets: int = 3
    winsor: float = 5.0
    # Eigenvalue floor for F, relative to its largest eigenvalue.
    eig_floor_rel: float = 1e-8


@dataclass(frozen=True)
class RiskModelInputs:
    """Panels aligned on (dates × securities); NaN where a security is not listed.

    returns     — simple daily returns (fractions).
    market_cap  — market capitalization (currency units), used for weights and buckets.
    sectors     — static sector label per security id.
    styles      — raw style characteristics, one panel per style factor name.
    """

    returns: pd.DataFrame
    market_cap: pd.DataFrame
    sectors: pd.Series
    styles: Mapping[str, pd.DataFrame] = field(default_factory=dict)


@dataclass(frozen=True)
class RiskDecomposition:
    """Ex-ante risk of a portfolio ``w`` (weights, fractions of portfolio value), daily units.

    total_var = factor_var + specific_var,  factor_var = yᵀFy with y = Bᵀw,
    specific_var = Σ D_i w_i²; ``factor_contrib[k] = y_k (F y)_k`` sums to factor_var
    (Euler decomposition of variance); ``asset_contrib[i]`` likewise sums to total_var.
    """

    total_var: float
    factor_var: float
    specific_var: float
    factor_exposure: pd.Series
    factor_contrib: pd.Series
    asset_contrib: pd.Series

    @property
    def total_vol(self) -> float:
        return float(np.sqrt(max(self.total_var, 0.0)))

    def annualized_vol(self, periods: int = 252) -> float:
        return self.total_vol * float(np.sqrt(periods))


@dataclass(frozen=True)
class RiskModel:
    """Factor risk model as of ``date``: ``Σ = B F Bᵀ + diag(D)`` (daily return units).

    B (N×K) exposures, F (K×K) factor covariance, D (N,) specific variance.
    ``factor_returns`` (history up to ``date``, dates × K) is kept for storage only.
    """

    date: pd.Timestamp
    security_ids: tuple[str, ...]
    factor_names: tuple[str, ...]
    B: FloatArray
    F: FloatArray
    D: FloatArray
    factor_returns: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        n, k = len(self.security_ids), len(self.factor_names)
        if self.B.shape != (n, k) or self.F.shape != (k, k) or self.D.shape != (n,):
            raise PortfolioInputError(
                f"inconsistent shapes: B {self.B.shape}, F {self.F.shape}, D {self.D.shape} "
                f"for N={n}, K={k}"
            )

    @property
    def n_assets(self) -> int:
        return len(self.security_ids)

    @property
    def n_factors(self) -> int:
        return len(self.factor_names)

    @property
    def specific_vol(self) -> FloatArray:
        return np.sqrt(np.maximum(self.D, 0.0))

    def factor_cholesky(self, eig_floor_rel: float = 1e-8) -> FloatArray:
        """Lower-triangular ``L`` with ``L Lᵀ = F⁺`` where ``F⁺`` is F with eigenvalues
        floored at ``eig_floor_rel · λ_max`` (handles singular / near-singular F)."""
        return psd_cholesky(self.F, eig_floor_rel)

    def subset(self, security_ids: Sequence[str]) -> RiskModel:
        """Model restricted (and reordered) to ``security_ids``; raises on unknown ids."""
        pos = {s: i for i, s in enumerate(self.security_ids)}
        missing = [s for s in security_ids if s not in pos]
        if missing:
            raise UnknownSecurityError(
                f"securities not in risk model {self.date.date()}: {missing[:20]}"
            )
        idx = np.array([pos[s] for s in security_ids], dtype=int)
        return RiskModel(
            self.date,
            tuple(security_ids),
            self.factor_names,
            self.B[idx],
            self.F,
            self.D[idx],
            self.factor_returns,
        )

    def portfolio_variance(self, w: FloatArray) -> float:
        """``wᵀΣw = (Bᵀw)ᵀ F (Bᵀw) + Σ D_i w_i²`` in O(NK)."""
        y = self.B.T @ w
        return float(y @ self.F @ y + np.sum(self.D * w * w))

    def decompose(self, w: FloatArray) -> RiskDecomposition:
        """Euler risk decomposition of ``w`` in factor form (see RiskDecomposition)."""
        w = np.asarray(w, dtype=float)
        y = self.B.T @ w
        Fy = self.F @ y
        factor_contrib = y * Fy
        spec = self.D * w * w
        # Marginal Σw = B F y + D w; asset contribution w_i (Σw)_i.
        asset = w * (self.B @ Fy) + spec
        fvar = float(factor_contrib.sum())
        svar = float(spec.sum())
        return RiskDecomposition(
            total_var=fvar + svar,
            factor_var=fvar,
            specific_var=svar,
            factor_exposure=pd.Series(y, index=list(self.factor_names), name="exposure"),
            factor_contrib=pd.Series(factor_contrib, index=list(self.factor_names), name="var"),
            asset_contrib=pd.Series(asset, index=list(self.security_ids), name="var"),
        )

    def predicted_beta(self, benchmark: FloatArray | None = None) -> FloatArray:
        """Predicted beta of each security to ``benchmark`` (default: the market factor
        portfolio, i.e. beta_i = Cov(r_i, f_market)/Var(f_market) = (B F)_{i,m}/F_mm)."""
        if benchmark is None:
            m = self.factor_names.index(MARKET)
            return (self.B @ self.F[:, m]) / self.F[m, m]
        b = np.asarray(benchmark, dtype=float)
        cov = self.B @ (self.F @ (self.B.T @ b)) + self.D * b
        return cov / float(b @ cov)

    def to_frames(self) -> dict[str, pd.DataFrame]:
        """Long frames for storage: ``exposures`` (date, security_id, factor, exposure),
        ``factor_returns`` (date, factor, return), ``factor_covariance`` (date, factor_i,
        factor_j, cov), ``specific_risk`` (date, security_id, specific_var)."""
        n, k = self.n_assets, self.n_factors
        sec = np.asarray(self.security_ids, dtype=object)
        fac = np.asarray(self.factor_names, dtype=object)
        exposures = pd.DataFrame(
            {
                "date": self.date,
                "security_id": np.repeat(sec, k),
                "factor": np.tile(fac, n),
                "exposure": self.B.reshape(-1),
            }
        )
        cov = pd.DataFrame(
            {
                "date": self.date,
                "factor_i": np.repeat(fac, k),
                "factor_j": np.tile(fac, k),
                "cov": self.F.reshape(-1),
            }
        )
        spec = pd.DataFrame({"date": self.date, "security_id": sec, "specific_var": self.D})
        if self.factor_returns is not None:
            fr = self.factor_returns.rename_axis(index="date", columns="factor")
            stacked = fr.stack().dropna()
            fret = pd.DataFrame(stacked).set_axis(["return"], axis=1).reset_index()
        else:
            fret = pd.DataFrame(
                {
                    "date": pd.Series([], dtype="datetime64[ns]"),
                    "factor": pd.Series([], dtype=object),
                    "return": pd.Series([], dtype=float),
                }
            )
        return {
            "exposures": exposures,
            "factor_returns": fret,
            "factor_covariance": cov,
            "specific_risk": spec,
        }


# ---------------------------------------------------------------------------
# Linear algebra helpers
# ---------------------------------------------------------------------------


def psd_cholesky(F: FloatArray, eig_floor_rel: float = 1e-8) -> FloatArray:
    """Cholesky of F after symmetrizing and flooring eigenvalues at ``eig_floor_rel·λ_max``.

    A singular F (e.g. collinear factors, fewer observations than factors) has no Cholesky
    factor; flooring changes F by at most ``eig_floor_rel·λ_max`` in spectral norm.
    """
    S = 0.5 * (F + F.T)
    vals, vecs = np.linalg.eigh(S)
    top = max(float(vals.max()), 0.0)
    floor = eig_floor_rel * top if top > 0 else eig_floor_rel
    vals = np.maximum(vals, floor)
    S2 = (vecs * vals) @ vecs.T
    S2 = 0.5 * (S2 + S2.T)
    try:
        return np.linalg.cholesky(S2)
    except np.linalg.LinAlgError:
        # Rounding can still break Cholesky; the symmetric square root is a valid factor.
        return vecs * np.sqrt(vals)


def _ewma_weights(n: int, halflife: float) -> FloatArray:
    """Weights for observations 0..n-1 (n-1 most recent): 0.5^((n-1-s)/h), not normalized."""
    age = np.arange(n - 1, -1, -1, dtype=float)
    return np.power(0.5, age / halflife)


def ewma_covariance(
    factor_returns: FloatArray, halflife: float, newey_west_lags: int = 0
) -> FloatArray:
    """Zero-mean EWMA covariance of a (T×K) array (NaN rows skipped), with Newey–West.

    ``Γ_l = Σ_s w_s f_s f_{s-l}ᵀ / Σ_s w_s``;  ``F = Γ_0 + Σ_{l=1..L} (1 − l/(L+1)) (Γ_l + Γ_lᵀ)``.
    """
    X = np.asarray(factor_returns, dtype=float)
    X = X[~np.isnan(X).any(axis=1)]
    T, K = X.shape
    if T == 0:
        return np.zeros((K, K))
    w = _ewma_weights(T, halflife)
    F = (X * w[:, None]).T @ X / w.sum()
    for lag in range(1, min(newey_west_lags, T - 1) + 1):
        wl = w[lag:]
        G = (X[lag:] * wl[:, None]).T @ X[:-lag] / wl.sum()
        F = F + (1.0 - lag / (newey_west_lags + 1.0)) * (G + G.T)
    return 0.5 * (F + F.T)


# ---------------------------------------------------------------------------
# Estimation
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Panel:
    """Inputs as aligned numpy arrays (dates × securities)."""

    dates: pd.DatetimeIndex
    securities: tuple[str, ...]
    returns: FloatArray
    cap: FloatArray
    sector_codes: np.ndarray  # (N,) int, -1 = unknown sector
    sector_names: tuple[str, ...]
    style_names: tuple[str, ...]
    styles: FloatArray  # (S, T, N)

    @property
    def factor_names(self) -> tuple[str, ...]:
        return (MARKET, *(SECTOR_PREFIX + s for s in self.sector_names), *self.style_names)

    @cached_property
    def structural(self) -> FloatArray:
        """(N, 1 + sectors) market and one-hot sector exposures (the same every date)."""
        X = np.zeros((len(self.securities), 1 + len(self.sector_names)))
        X[:, 0] = 1.0
        has = self.sector_codes >= 0
        X[np.flatnonzero(has), 1 + self.sector_codes[has]] = 1.0
        X.flags.writeable = False
        return X


def _is_str_index(index: pd.Index) -> bool:
    """``index`` already holds ``[str(x) for x in index]`` (a str Index, no missing label)."""
    return bool(index.dtype == "str" and not index.hasnans)


def _to_panel(inputs: RiskModelInputs) -> _Panel:
    ret = inputs.returns.sort_index()
    dates = pd.DatetimeIndex(ret.index)
    secs = [str(c) for c in ret.columns.tolist()]
    if not _is_str_index(ret.columns):
        ret.columns = pd.Index(secs)
    # else: the very labels ``pd.Index(secs)`` would hold, and the Index the input panels
    # share (risk_inputs), which ``equals`` below recognizes without comparing labels.

    def align(df: pd.DataFrame) -> FloatArray:
        if df.index.equals(dates) and df.columns.equals(ret.columns):
            # Already on the returns' axes (risk_inputs' panels): no relabel/reindex copy.
            return df.to_numpy(dtype=float, na_value=np.nan)
        d = df.copy()
        d.columns = pd.Index([str(c) for c in d.columns])
        return d.reindex(index=dates, columns=secs).to_numpy(dtype=float, na_value=np.nan)

    cap = align(inputs.market_cap)
    sect = inputs.sectors.copy()
    if not _is_str_index(sect.index):
        sect.index = pd.Index([str(i) for i in sect.index.tolist()])
    labels = sect.reindex(ret.columns)
    names = tuple(sorted({str(v) for v in labels.dropna().unique()}))
    code_of = {n: i for i, n in enumerate(names)}
    known = labels.notna().to_numpy()
    codes = np.full(len(secs), -1, dtype=int)
    codes[known] = [code_of[str(v)] for v in labels.to_numpy(dtype=object)[known]]
    style_names = tuple(inputs.styles.keys())
    if style_names:
        styles = np.stack([align(inputs.styles[s]) for s in style_names])
    else:
        styles = np.zeros((0, len(dates), len(secs)))
    return _Panel(
        dates=dates,
        securities=tuple(secs),
        returns=ret.to_numpy(dtype=float, na_value=np.nan),
        cap=cap,
        sector_codes=codes,
        sector_names=names,
        style_names=style_names,
        styles=styles,
    )


def standardize(raw: FloatArray, cap: FloatArray, winsor: float = 5.0) -> FloatArray:
    """Cap-weighted mean 0, equal-weighted std 1 over listed names (cap > 0); missing → 0.

    ``raw``: (S, N) style values for one date; ``cap``: (N,). Returns (S, N).
    """
    return standardize_panel(raw[:, None, :], cap[None, :], winsor)[:, 0, :]


def standardize_panel(raw: FloatArray, cap: FloatArray, winsor: float = 5.0) -> FloatArray:
    """:func:`standardize` of every date at once: ``raw`` (S, T, N), ``cap`` (T, N).

    Each (style, date) is computed with exactly the float operations of its own 1-D
    computation over its listed, non-missing names: the rows with the same number ``n``
    of such names are packed, left-aligned, into one row-major (rows × n) array, and
    numpy reduces each row of that along its last axis exactly as it reduces the row
    alone (pairwise; a column-major or zero-padded array would sum in another order).
    """
    S, T, N = raw.shape
    out = np.zeros((S, T, N))
    listed = np.isfinite(cap) & (cap > 0)
    c = np.where(listed, cap, 0.0)
    ok = (listed[None] & np.isfinite(raw)).reshape(S * T, N)
    values = raw.reshape(S * T, N)
    flat_out = out.reshape(S * T, N)
    count = ok.sum(axis=1)
    for n in np.unique(count[count >= 2]).tolist():
        rows = np.flatnonzero(count == n)
        mask = ok[rows]
        x = np.ascontiguousarray(values[rows][mask].reshape(len(rows), n))
        cw = np.ascontiguousarray(c[rows % T][mask].reshape(len(rows), n))
        total = cw.sum(axis=1)
        mu = np.sum(cw * x, axis=1) / total
        dev = x - mu[:, None]
        sd = np.std(dev, axis=1)
        good = (sd > 0) & np.isfinite(sd)
        if not good.any():
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.clip(dev / sd[:, None], -winsor, winsor)
        # Re-center after winsorizing so the cap-weighted mean stays exactly 0.
        z = z - (np.sum(cw * z, axis=1) / total)[:, None]
        z[~good] = 0.0  # no dispersion: the style says nothing that day (all 0)
        block = np.zeros((len(rows), N))
        block[mask] = z.reshape(-1)
        flat_out[rows] = block
    return out


def _exposures(
    p: _Panel, t: int, winsor: float, standardized: FloatArray | None = None
) -> tuple[FloatArray, FloatArray]:
    """Exposure matrix X (N×K) from data at date index ``t``, and the listed mask.

    ``standardized``: the panel's :func:`standardize_panel` (S, T, N) when already
    computed for every date; otherwise date ``t``'s styles are standardized here."""
    n_struct = 1 + len(p.sector_names)
    cap = p.cap[t]
    listed = np.isfinite(cap) & (cap > 0)
    X = np.empty((len(p.securities), n_struct + len(p.style_names)))
    X[:, :n_struct] = p.structural
    if p.style_names:
        z = (
            standardized[:, t, :]
            if standardized is not None
            else standardize(p.styles[:, t, :], cap, winsor)
        )
        X[:, n_struct:] = z.T
    return X, listed


def _cross_section(
    X: FloatArray, r: FloatArray, cap: FloatArray, n_sec: int
) -> tuple[FloatArray, FloatArray]:
    """Constrained WLS for one date. Rows: valid securities only. Returns (f (K,), resid)."""
    K = X.shape[1]
    sw = np.sqrt(cap)
    sec_cols = np.arange(1, 1 + n_sec)
    sec_cap = cap @ X[:, sec_cols]
    active = sec_cols[sec_cap > 0]
    # Reparametrize f = R g: drop inactive sectors (f=0) and eliminate the last active
    # sector with Σ c_s f_s = 0  ⇒  f_last = −Σ_{s≠last} (c_s/c_last) f_s.
    keep = [0, *active[:-1].tolist(), *range(1 + n_sec, K)]
    R = np.zeros((K, len(keep)))
    R[keep, np.arange(len(keep))] = 1.0
    if len(active) > 0:
        last = active[-1]
        c = sec_cap[active - 1]
        R[last, 1 : len(active)] = -c[:-1] / c[-1]
    Xr = X @ R
    A = Xr * sw[:, None]
    g, *_ = np.linalg.lstsq(A, r * sw, rcond=None)
    f = R @ g
    return f, r - X @ f


@dataclass(frozen=True)
class FactorReturnsEstimate:
    """Output of the daily cross-sectional regressions.

    factor_returns — (dates × factors); residuals — (dates × securities), NaN if untraded.
    """

    factor_returns: pd.DataFrame
    residuals: pd.DataFrame


def estimate_factor_returns(
    inputs: RiskModelInputs, config: RiskModelConfig | None = None
) -> FactorReturnsEstimate:
    """Daily factor returns by constrained sqrt-cap WLS (exposures lagged one day)."""
    cfg = config or RiskModelConfig()
    return _estimate(_to_panel(inputs), cfg)


def _estimate(p: _Panel, cfg: RiskModelConfig) -> FactorReturnsEstimate:
    T, N = p.returns.shape
    K = len(p.factor_names)
    n_sec = len(p.sector_names)
    fr = np.full((T, K), np.nan)
    resid = np.full((T, N), np.nan)
    min_names = K + 1
    if T < 2:
        return _estimate_frames(p, fr, resid)
    # Exposures of dates 0 … T-2 (each regresses the next day's returns), in one pass.
    standardized = standardize_panel(p.styles[:, :-1, :], p.cap[:-1], cfg.winsor)
    # Which names each date regresses (listed the day before, a return on the day), for
    # every date at once; a date with too few is skipped before building its exposures.
    listed = np.isfinite(p.cap[:-1]) & (p.cap[:-1] > 0)
    usable = listed & np.isfinite(p.returns[1:])
    dates = np.flatnonzero(usable.sum(axis=1) >= min_names)
    if len(dates):
        fr[dates + 1], resid[dates + 1] = _cross_sections(p, standardized, usable, dates, n_sec)
    return _estimate_frames(p, fr, resid)


#: The largest condition number of a date's (column-scaled) regression design that
#: :func:`_cross_sections` solves by the normal equations, whose relative error is about
#: its square times the machine epsilon (~1e-8 at this bound, ~1e-12 on a usual day's
#: ~1e2); a date above it (near-collinear factors) is solved by ``lstsq``.
_MAX_NORMAL_COND = 1e4


def _cross_sections(
    p: _Panel, standardized: FloatArray, usable: np.ndarray, dates: np.ndarray, n_sec: int
) -> tuple[FloatArray, FloatArray]:
    """:func:`_cross_section` of every date in ``dates`` (the regression of date ``t + 1``'s
    returns on ``t``'s exposures, over the names ``usable[t]``): factor returns (D, K) and
    residuals (D, N), NaN for a name not regressed.

    The dates are solved together: one stacked design, its normal equations and one
    batched solve (59 small least-squares calls a session were most of the risk model).
    The constraint's reparametrization is :func:`_cross_section`'s. A date whose design is
    not the usual one (a sector with no listed name) or is ill-conditioned
    (:data:`_MAX_NORMAL_COND`) is solved alone by :func:`_cross_section`."""
    D, K = len(dates), len(p.factor_names)
    ok = usable[dates]
    cap = np.where(ok, p.cap[dates], 0.0)
    r = np.where(ok, p.returns[dates + 1], 0.0)
    # The weighted normal equations of the unconstrained design, by block: the market
    # and sector columns are the same every date (``structural``, N × 1+n_sec), the styles
    # each date's (D × S × N, a factor's values contiguous).
    st = p.structural
    n_st = st.shape[1]
    styles = np.ascontiguousarray(standardized[:, dates, :].transpose(1, 0, 2))
    capped = styles * cap[:, None, :]
    full = np.empty((D, K, K))
    full[:, :n_st, :n_st] = (st.T[None] * cap[:, None, :]) @ st
    cross = capped @ st
    full[:, n_st:, :n_st] = cross
    full[:, :n_st, n_st:] = cross.transpose(0, 2, 1)
    full[:, n_st:, n_st:] = capped @ styles.transpose(0, 2, 1)
    moment = np.empty((D, K))
    moment[:, :n_st] = (cap * r) @ st
    moment[:, n_st:] = (capped @ r[:, :, None])[:, :, 0]
    R = np.zeros((D, K, K - 1 if n_sec else K))
    if n_sec:
        sec_cap = full[:, 0, 1 : 1 + n_sec]  # Σ cap over each sector's names
        batched: np.ndarray = np.asarray((sec_cap > 0).all(axis=1))
        keep = [0, *range(1, n_sec), *range(1 + n_sec, K)]
        R[:, keep, np.arange(len(keep))] = 1.0
        # (a date with an inactive sector keeps zeros: it is solved alone below)
        np.divide(
            -sec_cap[:, :-1], sec_cap[:, -1:], out=R[:, n_sec, 1:n_sec], where=batched[:, None]
        )
    else:
        batched = np.ones(D, dtype=bool)
        R[:, np.arange(K), np.arange(K)] = 1.0
    Rt = R.transpose(0, 2, 1)
    G = Rt @ full @ R
    rhs = (Rt @ moment[:, :, None])[:, :, 0]
    # A factor no regressed name is exposed to (a style without a value yet, early in the
    # window) is a zero column: lstsq's minimum-norm answer gives it 0 and the others the
    # least squares of the rest, as a unit pivot with a zero right-hand side does here.
    zero_d, zero_k = np.nonzero(np.einsum("dkk->dk", G) == 0)
    G[zero_d, zero_k, zero_k] = 1.0
    scale = 1.0 / np.sqrt(np.einsum("dkk->dk", G))
    Gs = G * scale[:, :, None] * scale[:, None, :]
    eig = np.linalg.eigvalsh(Gs)
    batched &= eig[:, 0] * _MAX_NORMAL_COND**2 > eig[:, -1]
    f = np.zeros((D, K))
    if batched.any():
        b = np.flatnonzero(batched)
        g = np.linalg.solve(Gs[b], (rhs[b] * scale[b])[:, :, None]) * scale[b][:, :, None]
        f[b] = (R[b] @ g)[:, :, 0]
    fitted = f[:, :n_st] @ st.T + (f[:, None, n_st:] @ styles)[:, 0, :]
    u = np.where(ok, r - fitted, np.nan)
    for i in np.flatnonzero(~batched).tolist():
        m = ok[i]
        X = np.concatenate([st, styles[i].T], axis=1)
        f[i], u_i = _cross_section(X[m], r[i][m], cap[i][m], n_sec)
        u[i] = np.nan
        u[i, m] = u_i
    return f, u


def _estimate_frames(p: _Panel, fr: FloatArray, resid: FloatArray) -> FactorReturnsEstimate:
    """The regressions' arrays as :class:`FactorReturnsEstimate` frames on ``p``'s axes."""
    return FactorReturnsEstimate(
        factor_returns=pd.DataFrame(fr, index=p.dates, columns=list(p.factor_names)),
        residuals=pd.DataFrame(resid, index=p.dates, columns=list(p.securities)),
    )


def _size_bucket(cap: FloatArray, listed: FloatArray, n_buckets: int) -> np.ndarray:
    out = np.full(cap.shape, -1, dtype=int)
    if listed.sum() == 0:
        return out
    ranks = pd.Series(cap[listed]).rank(pct=True).to_numpy()
    out[listed] = np.minimum((ranks * n_buckets).astype(int), n_buckets - 1)
    return out


def shrink_specific_vol(
    sigma: FloatArray,
    n_obs: FloatArray,
    cap: FloatArray,
    bucket: np.ndarray,
    q: float,
    min_history: int,
) -> FloatArray:
    """Bayesian shrinkage of specific vols toward the cap-weighted bucket mean (see module doc).

    ``sigma`` may be NaN for securities without history; they receive the bucket prior
    (or the global prior if the bucket has no history at all).
    """
    out = sigma.copy()
    has = np.isfinite(sigma) & (n_obs > 0)
    glob_w = np.where(has, cap, 0.0)
    glob = np.sum(glob_w * np.where(has, sigma, 0.0)) / glob_w.sum() if glob_w.sum() > 0 else 0.0
    # Each bucket's members in ascending position (a stable sort by bucket, then one slice
    # per bucket): the very elements, in the very order, that ``bucket == b`` selects.
    order = np.argsort(bucket, kind="stable")
    ranked = bucket[order]
    buckets = np.unique(ranked[ranked >= 0])
    bounds = zip(
        buckets.tolist(),
        np.searchsorted(ranked, buckets, "left").tolist(),
        np.searchsorted(ranked, buckets, "right").tolist(),
        strict=True,
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        for _, first, stop in bounds:
            m = order[first:stop]
            hm = has[m]
            mh = m[hm]
            if mh.size == 0:
                prior, spread = glob, 0.0
            else:
                cw = cap[mh]
                prior = float(np.sum(cw * sigma[mh]) / cw.sum())
                spread = float(np.sqrt(np.mean((sigma[mh] - prior) ** 2)))
            s = np.where(hm, sigma[m], prior)
            dev = q * np.abs(s - prior)
            v = np.where(dev + spread > 0, dev / (spread + dev), 0.0)
            shrunk = v * prior + (1 - v) * s
            # New listings: blend toward the prior in proportion to missing history.
            omega = np.clip(n_obs[m] / max(min_history, 1), 0.0, 1.0)
            out[m] = omega * shrunk + (1 - omega) * prior
    out[bucket < 0] = np.where(np.isfinite(out[bucket < 0]), out[bucket < 0], glob)
    return out


def _specific_state(
    resid: FloatArray, halflife: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """EWMA numerator/denominator over the rows of ``resid`` (T×N) and observation counts."""
    T = resid.shape[0]
    w = _ewma_weights(T, halflife)
    obs = np.isfinite(resid)
    u2 = np.where(obs, resid * resid, 0.0)
    num = w @ u2
    den = w @ obs.astype(float)
    return num, den, obs.sum(axis=0).astype(float)


def build_risk_model(
    inputs: RiskModelInputs,
    as_of: pd.Timestamp | str | None = None,
    config: RiskModelConfig | None = None,
    estimate: FactorReturnsEstimate | None = None,
) -> RiskModel:
    """Risk model for the close of ``as_of`` (default: last date) using history up to it.

    Universe = securities with a positive market cap on ``as_of``. Exposures are built
    from ``as_of`` data (they forecast the risk of returns on the next day). Pass a
    precomputed ``estimate`` to avoid re-running the regressions for several dates.
    """
    cfg = config or RiskModelConfig()
    p = _to_panel(inputs)
    est = estimate if estimate is not None else _estimate(p, cfg)
    t = (
        len(p.dates) - 1
        if as_of is None
        else int(p.dates.get_indexer(pd.DatetimeIndex([pd.Timestamp(as_of)]))[0])
    )
    if t < 0:
        raise UnknownSecurityError(f"as_of {as_of} not in the returns index")
    return _model_at(p, est, t, cfg)


def _model_at(p: _Panel, est: FactorReturnsEstimate, t: int, cfg: RiskModelConfig) -> RiskModel:
    X, listed = _exposures(p, t, cfg.winsor)
    fr_hist = est.factor_returns.iloc[: t + 1]
    fr_values = fr_hist.to_numpy()
    F = ewma_covariance(fr_values, cfg.factor_halflife, cfg.newey_west_lags)
    resid = est.residuals.to_numpy()[: t + 1]
    num, den, n_obs = _specific_state(resid, cfg.specific_halflife)
    with np.errstate(invalid="ignore", divide="ignore"):
        sigma = np.where(den > 0, np.sqrt(num / den), np.nan)
    cap = np.where(listed, p.cap[t], 0.0)
    bucket = _size_bucket(cap, listed, cfg.size_buckets)
    # Bucket = sector × size tercile; unknown sector forms its own group.
    bucket = np.where(bucket >= 0, (p.sector_codes + 1) * cfg.size_buckets + bucket, -1)
    sig = shrink_specific_vol(sigma, n_obs, cap, bucket, cfg.shrinkage_q, cfg.min_history)
    idx = np.flatnonzero(listed)
    return RiskModel(
        date=pd.Timestamp(p.dates[t]),
        security_ids=tuple(p.securities[i] for i in idx),
        factor_names=p.factor_names,
        B=X[idx],
        F=F,
        D=sig[idx] ** 2,
        # fr_hist.dropna(how="all"), the rows taken directly.
        factor_returns=fr_hist.iloc[np.flatnonzero(~np.isnan(fr_values).all(axis=1))],
    )


# ---------------------------------------------------------------------------
# Diagnostics
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BiasStatistic:
    """Bias statistic ``b = std(r_{t+1}/σ̂_t)`` over ``n`` observations.

    For a well-calibrated model b ≈ 1; under normality its approximate 95% band is
    ``1 ± 1.96·sqrt(1/(2n))``. b > upper ⇒ risk under-predicted; b < lower ⇒ over-predicted.
    """

    b: float
    lower: float
    upper: float
    n: int

    @property
    def within_band(self) -> bool:
        return self.lower <= self.b <= self.upper


def bias_statistic(
    realized: pd.Series | FloatArray, predicted_vol: pd.Series | FloatArray, z: float = 1.96
) -> BiasStatistic:
    """Bias statistic of realized returns vs the *previous* day's predicted volatility.

    Inputs are aligned elementwise (``realized[t]`` was forecast by ``predicted_vol[t]``);
    pairs with NaN or σ̂ ≤ 0 are dropped.
    """
    r = np.asarray(realized, dtype=float)
    s = np.asarray(predicted_vol, dtype=float)
    ok = np.isfinite(r) & np.isfinite(s) & (s > 0)
    n = int(ok.sum())
    if n < 2:
        return BiasStatistic(float("nan"), float("nan"), float("nan"), n)
    zs = r[ok] / s[ok]
    b = float(np.std(zs, ddof=1))
    half = z * float(np.sqrt(1.0 / (2.0 * n)))
    return BiasStatistic(b, 1.0 - half, 1.0 + half, n)


def rolling_bias_test(
    inputs: RiskModelInputs,
    portfolios: pd.DataFrame,
    window: int = 250,
    start: int | None = None,
    config: RiskModelConfig | None = None,
) -> tuple[pd.DataFrame, dict[str, BiasStatistic]]:
    """Out-of-sample bias test for test portfolios (columns of ``portfolios``: weights by
    security id). For each date t ≥ start the model as of t predicts σ̂_t; the realized
    return is ``wᵀ r_{t+1}`` (missing returns count as 0). Returns the per-date frame
    (columns ``<pf>_pred``, ``<pf>_real``) and the bias statistic over the last ``window``.
    """
    cfg = config or RiskModelConfig()
    p = _to_panel(inputs)
    est = _estimate(p, cfg)
    T = len(p.dates)
    W = portfolios.reindex([str(s) for s in p.securities]).fillna(0.0).to_numpy(dtype=float)
    first = start if start is not None else max(cfg.min_history * 3, 1)
    fr = est.factor_returns.to_numpy()
    resid = est.residuals.to_numpy()
    rows: list[dict[str, float]] = []
    idx: list[pd.Timestamp] = []
    # Recursive EWMA of residual² so each date costs O(N), not O(tN).
    lam = 0.5 ** (1.0 / cfg.specific_halflife)
    num = np.zeros(len(p.securities))
    den = np.zeros(len(p.securities))
    nobs = np.zeros(len(p.securities))
    for t in range(T - 1):
        u = resid[t]
        ok = np.isfinite(u)
        num = lam * num + np.where(ok, u * u, 0.0)
        den = lam * den + ok
        nobs = nobs + ok
        if t < first:
            continue
        X, listed = _exposures(p, t, cfg.winsor)
        F = ewma_covariance(fr[: t + 1], cfg.factor_halflife, cfg.newey_west_lags)
        with np.errstate(invalid="ignore", divide="ignore"):
            sigma = np.where(den > 0, np.sqrt(num / den), np.nan)
        cap = np.where(listed, p.cap[t], 0.0)
        bucket = _size_bucket(cap, listed, cfg.size_buckets)
        bucket = np.where(bucket >= 0, (p.sector_codes + 1) * cfg.size_buckets + bucket, -1)
        D = shrink_specific_vol(sigma, nobs, cap, bucket, cfg.shrinkage_q, cfg.min_history) ** 2
        Wl = W * listed[:, None]
        Y = X.T @ Wl
        var = np.einsum("kp,kl,lp->p", Y, F, Y) + np.nansum(D[:, None] * Wl * Wl, axis=0)
        realized = np.nan_to_num(p.returns[t + 1]) @ Wl
        row: dict[str, float] = {}
        for j, name in enumerate(portfolios.columns):
            row[f"{name}_pred"] = float(np.sqrt(max(var[j], 0.0)))
            row[f"{name}_real"] = float(realized[j])
        rows.append(row)
        idx.append(pd.Timestamp(p.dates[t + 1]))
    frame = pd.DataFrame(rows, index=pd.DatetimeIndex(idx, name="date"))
    tail = frame.iloc[-window:]
    stats = {
        str(name): bias_statistic(tail[f"{name}_real"], tail[f"{name}_pred"])
        for name in portfolios.columns
    }
    return frame, stats
