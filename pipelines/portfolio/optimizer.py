"""Single-period portfolio optimizer: a DPP-parametrized cvxpy problem, built once.

Problem (weights ``w`` as fractions of NAV, one-day horizon)::

    maximize    αᵀw − λ(‖Lᵀy‖² + ‖σ∘w‖²) − κ_t(Σ a_i|z_i| + Σ b_i|z_i|^{3/2}) − κ_h Σ h_i(w_i)₋
    subject to  y = Bᵀw                                    (factor form: no N×N matrix)
                lo ≤ w ≤ hi                                 (hard: position / %ADV /
                                                              participation / long-only /
                                                              restricted list)
                Σ|w_i| ≤ G                                  (hard: gross leverage)
                Σ w_i ∈ [n_lo, n_hi]                        (net exposure band)
                y_k ∈ [f_lo_k, f_hi_k]  for bounded factors (sector and style bounds)
                βᵀw ∈ [β_lo, β_hi]                          (beta neutrality)
                Σ|z_i| ≤ T                                  (turnover cap)
                M_g|w| ≤ g, M_n w ∈ [n_lo, n_hi],           (hard: hierarchical limits,
                M_l w₊ ≤ l, M_s w₋ ≤ s                       one 0/1 sparse row per node)

with ``L Lᵀ = F`` (eigenvalue-floored Cholesky, so singular F is fine), σ the specific
volatility, and cost coefficients from :mod:`pipelines.portfolio.costs`. λ is folded
into the parameters (``√λ L``, ``√λ σ``) to keep the problem DPP: a parameter may not
multiply an expression that itself contains parameters.

Everything that changes daily is a ``cp.Parameter``: α, the style columns of B, L, σ,
w0, a, b, h, lo/hi, β, factor/net bounds, turnover cap. The market and sector columns of B
(0/1, they change only with the universe) are compiled in as a constant sparse matrix when
``fixed_exposures`` is given (``optimize`` does; a new structure builds a new problem).
The cvxpy problem is built and compiled on its first solve (the parameters exist from the
start: the direct program below reads them); later solves only re-apply parameters
(cvxpy's cached affine map) and call the solver.

Speed (bench/optimizer.py, N=3,000, K=40): a warm re-solve was ~94% Clarabel's own
interior-point iterations (~25-38 of them) on cvxpy's canonicalisation (~6 variables and ~13
cone rows per name). The chain's first ``CLARABEL`` entry therefore solves the same problem
written directly for Clarabel (:mod:`pipelines.portfolio.direct`: 5 variables and 12 rows per
name, risk in ``P``, impact cones scaled to a day's trade; ~21-25 iterations, no cvxpy
parameter mapping), whenever no soft group is open; its numbers are read from this class's
cvxpy parameters, so both are one problem. Relaxed solves, ``CLARABEL_REFINED`` and SCS run
the compiled cvxpy problem, compiled on first use. The shipped policies run Clarabel
without iterative refinement first (~40% less time per iteration) and fall back to Clarabel
with refinement (``CLARABEL_REFINED``), then SCS; every answer is re-audited (``_audit``)
before it is used.

Soft constraints carry a slack ``u·s`` with ``s ∈ [0, 1]`` and a parameter ``u`` (the
maximum widening, 0 while the constraint is hard). When the problem is infeasible the
groups in ``policy.relaxation_order`` are opened one after another (cumulatively) and
the problem re-solved with a penalty ``ρ·u·s`` (ρ = ``relaxation_penalty`` ≫ alpha), so
the widening is minimal. Hard constraints have no slack; if the problem is infeasible
with every soft group open, the status is ``infeasible`` and no weights are returned.

Hierarchical limits (``policy.limits``, :mod:`pipelines.portfolio.limits_tree`): every
bounded node of the tree is one row ``M @ x`` over a sparse 0/1 membership matrix ``M``
(nodes × N, one nonzero per member: never an N×N matrix) with ``x`` = w (net), |w|
(gross), w₊ = (|w| + w)/2 (long) or w₋ = (|w| − w)/2 (short), |w| being the gross
epigraph variable; long-only books use w for all three. Membership changes only with the
universe's attributes (region, asset class, sector), so it is compiled in like the sector
columns of B (part of the cached problem's key); the bounds are parameters, and a warm
re-solve only re-applies parameters. The rows are hard: when even with every soft group
open the problem is infeasible — a book already beyond a limit that today's trade caps
cannot bring back — each node beyond its limit is held at the book's own level (never
worse, which is what pre-trade accepts) and reported as a relaxation of group
``limits``. A security's own bound narrows its ``lo``/``hi``. Every answer is audited
against every node (``_SUM_TOL``).

Maximum number of names (heuristic): solve; if more than ``max_names`` positions exceed
``name_threshold``, keep the top ``max_names`` by |w| (plus any name whose bounds exclude
0, e.g. a position that the participation limit cannot fully liquidate today), pin the
others to 0 through ``lo``/``hi`` and re-solve the same compiled problem.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from pipelines.portfolio import costs
from pipelines.portfolio.direct import DirectProblem
from pipelines.portfolio.direct import supported as direct_supported
from pipelines.portfolio.errors import PortfolioInputError
from pipelines.portfolio.limits_tree import KINDS, LimitTree, ResolvedLimits, exposure, resolve
from pipelines.portfolio.policy import Policy
from pipelines.portfolio.results import ObjectiveTerms, OptimizationResult, Relaxation, SolveRecord
from pipelines.portfolio.risk_model import (
    MARKET,
    SECTOR_PREFIX,
    RiskModel,
    is_structural_factor,
    psd_cholesky,
)
from pipelines.portfolio.solvers import solver_instance

FloatArray = np.ndarray

# Widening caps (u) when a soft group is opened, as multiples of gross leverage.
_WIDEN = 10.0
_RELAX_TOL = 1e-7
# Tolerance for the post-solve feasibility audit of the returned weights (fractions of NAV):
# per-name bounds and single-row constraints (net, factor, beta) ...
_FEAS_TOL = 1e-6
# ... and the two sums of |.| over every name (gross, turnover), whose epigraph rows each
# carry the solver's residual: 1e-5 of NAV (measured worst case at N=3,000 and tol_feas 1e-8:
# 2e-6). Whole-share rounding of the targets moves both by far more than that.
_SUM_TOL = 1e-5
# Relaxation group of limit-tree nodes held at the book's own level (never a declared
# policy group: only used when the limits cannot all be reached today).
LIMITS_GROUP = "limits"


class MissingAlphaError(PortfolioInputError):
    """Alpha is NaN or missing for securities in the optimization universe."""

    def __init__(self, securities: Sequence[str]) -> None:
        self.securities = list(securities)
        shown = ", ".join(self.securities[:25])
        more = f" (+{len(self.securities) - 25} more)" if len(self.securities) > 25 else ""
        super().__init__(
            f"alpha is NaN or missing for {len(self.securities)} securities in the "
            f"universe: {shown}{more}"
        )


class InputDataError(PortfolioInputError):
    """Non-alpha input (ADV, risk model, weights, …) is invalid for some securities."""


class StructureChangedError(PortfolioInputError):
    """The day's market/sector exposures differ from those compiled into the problem."""


def tree_attributes(rm: RiskModel, given: pd.DataFrame | None = None) -> pd.DataFrame:
    """Limit-tree attributes of ``rm``'s securities: ``given`` (indexed by security id),
    with ``sector`` taken from the risk model's one-hot sector columns when ``given`` has
    none (a name in no sector column gets None: the tree's ``unassigned`` node)."""
    ids = pd.Index(rm.security_ids, dtype=object)
    out = given.reindex(ids) if given is not None else None
    if out is not None and "sector" in out.columns:
        return out
    names, pick = _sector_pick(rm)
    sector = pd.Series(names[pick], index=ids, dtype=object)
    if out is None:
        return pd.DataFrame({"sector": sector})
    return out.assign(sector=sector)


def _sector_pick(rm: RiskModel) -> tuple[np.ndarray, np.ndarray]:
    """The sector names (then None) and, per security, the position of its sector among
    them (from the one-hot sector columns of ``rm.B``; None's position when in none)."""
    cols = [k for k, f in enumerate(rm.factor_names) if f.startswith(SECTOR_PREFIX)]
    names = np.array(
        [rm.factor_names[k][len(SECTOR_PREFIX) :] for k in cols] + [None], dtype=object
    )
    if cols:
        block = np.asarray(rm.B[:, cols], dtype=float)
        pick = np.where(block.max(axis=1) > 0.5, block.argmax(axis=1), len(cols))
    else:
        pick = np.zeros(len(rm.security_ids), dtype=int)
    return names, pick


# Limit trees laid over a universe, by (tree, ids, factors, sectors): a backtest's universe
# and sector labels change seldom, and resolving them (pandas frames and a group-by) came
# back every session with the same answer.
_RESOLVED: dict[tuple[object, ...], ResolvedLimits] = {}
_RESOLVED_SIZE = 4


def _resolved_limits(
    tree: LimitTree, rm: RiskModel, attributes: pd.DataFrame | None
) -> ResolvedLimits:
    """``resolve(tree, rm.security_ids, tree_attributes(rm, attributes))``, remembered when
    the attributes come from the risk model alone (``attributes`` None)."""
    if attributes is not None:
        return resolve(tree, rm.security_ids, tree_attributes(rm, attributes))
    names, pick = _sector_pick(rm)
    key = (tree.model_dump_json(), rm.security_ids, tuple(names.tolist()), pick.tobytes())
    limits = _RESOLVED.get(key)
    if limits is None:
        limits = resolve(tree, rm.security_ids, tree_attributes(rm))
        while len(_RESOLVED) >= _RESOLVED_SIZE:
            _RESOLVED.pop(next(iter(_RESOLVED)))
        _RESOLVED[key] = limits
    return limits


def structural_exposures(rm: RiskModel) -> FloatArray:
    """The market and sector columns of ``rm.B`` (N × their count), in factor order."""
    idx = [k for k, f in enumerate(rm.factor_names) if is_structural_factor(f)]
    return np.asarray(rm.B[:, idx], dtype=float)


@dataclass(frozen=True)
class OptimizationInputs:
    """Everything that changes from day to day.

    alpha            — expected next-day return per security id (fraction).
    risk_model       — factor model; the universe is its ``security_ids`` unless
                       ``universe`` is given (then the model is subset to it).
    current_weights  — w0 (fraction of NAV) by security id; missing ⇒ 0. Holdings outside
                       the universe are an error (add them to the universe to liquidate).
    portfolio_value  — NAV V (currency).
    adv              — average daily dollar volume (currency/day).
    half_spread      — half bid-ask spread (fraction); scalar or per security.
    borrow_fee       — annualized borrow fee on shorts (fraction/yr); default from policy.
    volatility       — daily total vol for the impact model; default √diag(BFBᵀ+D).
    beta             — predicted beta; default the risk model's beta to the market factor.
    restricted       — restricted list (handled per ``policy.restricted_mode``).
    attributes       — limit-tree attributes by security id (columns ``region``,
                       ``asset_class``, ``sector``); default: the risk model's sectors.
    prices           — price per share (currency), for ``policy.max_trade_shares``.
    """

    date: pd.Timestamp
    alpha: pd.Series
    risk_model: RiskModel
    current_weights: pd.Series
    portfolio_value: float
    adv: pd.Series
    half_spread: pd.Series | float = 0.0005
    borrow_fee: pd.Series | None = None
    volatility: pd.Series | None = None
    beta: pd.Series | None = None
    restricted: frozenset[str] = frozenset()
    universe: Sequence[str] | None = None
    attributes: pd.DataFrame | None = None
    prices: pd.Series | None = None


@dataclass(frozen=True)
class _LimitRows:
    """One side of the limit rows of one kind: nodes, membership, bound parameter."""

    kind: str
    side: str  # "hi": M @ x ≤ param; "lo": M @ x ≥ param
    nodes: tuple[str, ...]
    M: Any
    param: Any
    bound: FloatArray


@dataclass
class _Day:
    """Numeric parameter values for one solve (all aligned to the universe)."""

    ids: tuple[str, ...]
    alpha: FloatArray
    w0: FloatArray
    B: FloatArray
    L: FloatArray  # Cholesky of F (without λ)
    spec_vol: FloatArray
    a: FloatArray
    b: FloatArray
    h: FloatArray
    lo: FloatArray
    hi: FloatArray
    beta: FloatArray
    sectors_of_factor: dict[int, str] = field(default_factory=dict)
    # c with beta = B·c when beta is the risk model's predicted beta (else None).
    beta_factors: FloatArray | None = None


def _series(
    x: pd.Series | float | None, ids: Sequence[str], default: float, index: pd.Index | None = None
) -> FloatArray:
    """``x`` aligned to ``ids`` (``index``: ``ids`` as a ready pd.Index), NaN where missing."""
    if x is None:
        return np.full(len(ids), default)
    if isinstance(x, pd.Series):
        return x.reindex(list(ids) if index is None else index).to_numpy(
            dtype=float, na_value=np.nan
        )
    return np.full(len(ids), float(x))


def _require_finite(name: str, values: FloatArray, ids: Sequence[str]) -> None:
    bad = [ids[int(i)] for i in np.flatnonzero(~np.isfinite(values))]
    if bad:
        raise InputDataError(f"{name} is NaN/missing for {len(bad)} securities: {bad[:25]}")


class PortfolioOptimizer:
    """Compiled optimization problem for a fixed (policy, N, factor names).

    Build once per universe size / policy; call :meth:`solve` every day.
    """

    def __init__(
        self,
        policy: Policy,
        n_assets: int,
        factor_names: Sequence[str],
        fixed_exposures: FloatArray | None = None,
        limits: ResolvedLimits | None = None,
    ) -> None:
        import cvxpy as cp

        self.policy = policy
        self.n = n_assets
        self.factor_names = tuple(factor_names)
        N, K = n_assets, len(self.factor_names)
        P = policy
        self._cp = cp
        if P.limits is not None and limits is None:
            raise InputDataError(
                f"policy {P.name} has hierarchical limits: build the optimizer with them "
                "laid over the universe (optimize() does)"
            )
        if limits is not None and len(limits.ids) != N:
            raise InputDataError(f"limits laid over {len(limits.ids)} names, optimizer N={N}")
        self._limits = limits
        self._limit_meta: list[_LimitRows] = []

        # Bounded factor indices (structure fixed at build time) and their group.
        bounded: list[tuple[int, str]] = []
        for k, f in enumerate(self.factor_names):
            if f.startswith(SECTOR_PREFIX):
                if P.sector_bounds is not None or f[len(SECTOR_PREFIX) :] in P.sector_overrides:
                    bounded.append((k, "sector_bounds"))
            elif f in P.factor_bounds:
                bounded.append((k, "factor_bounds"))
        unknown = set(P.factor_bounds) - set(self.factor_names)
        if unknown:
            raise InputDataError(f"policy {P.name} bounds unknown factors {sorted(unknown)}")
        self._bounded_idx = np.array([k for k, _ in bounded], dtype=int)
        self._bounded_group = [g for _, g in bounded]
        nb = len(bounded)

        # Market and sector columns of B change only when the universe or a sector label
        # does: given ``fixed_exposures`` (N × their count) they are compiled in as a
        # constant sparse matrix (one nonzero per name per column instead of N·K dense
        # parameter entries); every day's B is checked against it in ``solve_prepared``.
        fixed = [k for k, f in enumerate(self.factor_names) if is_structural_factor(f)]
        if fixed_exposures is None:
            fixed = []
        elif np.shape(fixed_exposures) != (N, len(fixed)):
            raise InputDataError(
                f"fixed_exposures must be N×{len(fixed)} (market + sector columns), "
                f"got {np.shape(fixed_exposures)}"
            )
        self._fixed_idx = np.array(fixed, dtype=int)
        self._free_idx = np.array([k for k in range(K) if k not in set(fixed)], dtype=int)
        self._fixed_B = (
            np.asarray(fixed_exposures, dtype=float).copy() if fixed else np.zeros((N, 0))
        )

        par = cp.Parameter
        self.p_alpha = par(N, name="alpha")
        self.p_B = par((N, len(self._free_idx)), name="B_free")
        self.p_L = par((K, K), name="sqrt_lambda_L")
        self.p_sig = par(N, nonneg=True, name="sqrt_lambda_sigma")
        self.p_w0 = par(N, name="w0")
        self.p_a = par(N, nonneg=True, name="a")
        self.p_b = par(N, nonneg=True, name="b")
        self.p_h = par(N, nonneg=True, name="h")
        self.p_lo = par(N, name="lo")
        self.p_hi = par(N, name="hi")

        # The other parameters, the soft groups' widening and penalty parameters and the
        # limit rows' membership and bounds: all that the direct program
        # (pipelines.portfolio.direct), the audit and the relaxation loop read.
        self.p_net = par(2, name="net_band")
        if nb:
            self.p_flo = par(nb, name="factor_lo")
            self.p_fhi = par(nb, name="factor_hi")
        if P.beta_band is not None:
            self.p_beta = par(N, name="beta")
            self.p_bband = par(2, name="beta_band")
        if P.turnover_cap is not None:
            self.p_turn = par(nonneg=True, name="turnover_cap")
        # Soft groups in the order the problem's slacks take them: group -> (u, pen).
        self._soft: dict[str, tuple[Any, Any]] = {}
        sizes = [("net_exposure", 2)]
        for group in ("factor_bounds", "sector_bounds"):
            sizes.append((group, 2 * self._bounded_group.count(group)))
        sizes += [("beta", 2 if P.beta_band is not None else 0)]
        sizes += [("turnover", 1 if P.turnover_cap is not None else 0)]
        for group, size in sizes:
            if P.is_soft(group) and size:
                self._soft[group] = (
                    par(size, nonneg=True, name=f"widen_{group}"),
                    par(size, nonneg=True, name=f"penalty_{group}"),
                )
        if limits is not None:
            self._limit_meta = self._limit_params(limits, long_only=P.mode == "long_only")
        self._solvers = {name: solver_instance(name) for name in P.solvers}
        # The cvxpy problem itself is built on first use (:attr:`problem`): a day whose
        # first solve is the direct program's never needs it, and building it (~0.1 s of
        # expression trees, more with limit rows) on every new universe was most of an
        # optimizer's construction.
        self._problem: Any = None
        self._slack_vars: dict[str, Any] = {}
        self.compiled = False
        # The leaner cone program handed to Clarabel directly (pipelines.portfolio.direct):
        # the first solver of a day whenever no soft group is open.
        # The beta row is written through y (predicted beta, the usual case) until a day
        # brings an explicit beta (then rebuilt with a row over all names).
        self._beta_factors: FloatArray | None = None
        self._direct = (
            DirectProblem(self, beta_via_factors=MARKET in self.factor_names)
            if P.direct_solve and direct_supported(self)
            else None
        )
        self._direct_w: FloatArray | None = None
        self._ids_key: tuple[str, ...] | None = None
        self._ids_idx = pd.Index([])
        self._last_path = "cvxpy"

    @property
    def problem(self) -> Any:
        """The DPP-parametrized cvxpy problem (module docstring), built on first use."""
        if self._problem is None:
            self._build_problem()
        return self._problem

    def _build_problem(self) -> None:
        """Build the cvxpy problem over the parameters made in ``__init__``."""
        cp = self._cp
        import scipy.sparse as sp

        P = self.policy
        N, K = self.n, len(self.factor_names)
        nb = len(self._bounded_idx)
        fixed = len(self._fixed_idx) > 0
        w = self.w_var = cp.Variable(N, name="w")  # fractions of NAV
        # tz ≥ |w − w0| (tight at the optimum when a_i + b_i > 0; otherwise only the
        # turnover cap sees it, for which an upper bound of |z| is still valid).
        tz = cp.Variable(N, name="abs_z")
        y = cp.Variable(K, name="y")
        self.w, self.y = w, y

        if fixed:
            S = sp.csc_array(self._fixed_B)
            exposure_rows: list[Any] = [
                y[self._fixed_idx] == S.T @ w,
                y[self._free_idx] == self.p_B.T @ w,
            ]
        else:
            exposure_rows = [y == self.p_B.T @ w]
        cons: list[Any] = [
            *exposure_rows,
            tz >= w - self.p_w0,
            tz >= self.p_w0 - w,
            w >= self.p_lo,
            w <= self.p_hi,
        ]
        if P.mode == "long_only":
            # w ≥ 0 is enforced through lo; gross = Σw.
            cons.append(cp.sum(w) <= P.gross_leverage)
            short_part: Any = 0.0
            tw: Any = w
        else:
            tw = cp.Variable(N, name="abs_w")
            cons += [tw >= w, tw >= -w, cp.sum(tw) <= P.gross_leverage]
            # (|w| − w)/2 = max(−w, 0); tight at the optimum whenever h_i > 0.
            short_part = (tw - w) / 2
        if self._limit_meta:
            cons += self._limit_rows(w, tw, long_only=P.mode == "long_only")

        penalty: Any = 0.0

        def slack(group: str, size: int) -> Any:
            """Widening term u∘s for a soft group (zero expression if the group is hard)."""
            nonlocal penalty
            if group not in self._soft:
                return np.zeros(size)
            u, pen = self._soft[group]
            s = cp.Variable(size, name=f"slack_{group}")
            cons.extend([s >= 0, s <= 1])
            penalty = penalty + pen @ s
            self._slack_vars[group] = s
            return cp.multiply(u, s)

        # Net exposure band.
        sl = slack("net_exposure", 2)
        cons += [cp.sum(w) >= self.p_net[0] - sl[0], cp.sum(w) <= self.p_net[1] + sl[1]]

        # Factor / sector bounds: one slack vector per group, on the rows of that group.
        if nb:
            yb = y[self._bounded_idx]
            widen_lo: Any = np.zeros(nb)
            widen_hi: Any = np.zeros(nb)
            for group in ("factor_bounds", "sector_bounds"):
                rows = np.array([i for i, g in enumerate(self._bounded_group) if g == group])
                if rows.size == 0 or group not in self._soft:
                    continue
                sg = slack(group, 2 * rows.size)
                sel_lo = np.zeros((nb, rows.size))
                sel_lo[rows, np.arange(rows.size)] = 1.0
                widen_lo = widen_lo + sel_lo @ sg[: rows.size]
                widen_hi = widen_hi + sel_lo @ sg[rows.size :]
            cons += [yb >= self.p_flo - widen_lo, yb <= self.p_fhi + widen_hi]

        if P.beta_band is not None:
            sl = slack("beta", 2)
            bw = self.p_beta @ w
            cons += [bw >= self.p_bband[0] - sl[0], bw <= self.p_bband[1] + sl[1]]

        if P.turnover_cap is not None:
            sl = slack("turnover", 1)
            cons.append(cp.sum(tz) <= self.p_turn + sl[0])

        impact = cp.power(tz, 1.5, approx=not P.impact_power_cone)
        # Specific risk as ‖√λσ∘w‖² (cvxpy adds one auxiliary copy of σ∘w per name). The
        # alternative Σ λσ²_i w_i², a parametrized diagonal of the solver's P, saves that copy
        # but cvxpy 1.9 extracts a parametric P through an N²-row dense product: the first
        # solve at N=3,000 took 9-18 s instead of 3 s for the same warm re-solve time.
        self.risk_expr = cp.sum_squares(self.p_L.T @ y) + cp.sum_squares(cp.multiply(self.p_sig, w))
        self.tcost_expr = self.p_a @ tz + self.p_b @ impact
        self.hold_expr = self.p_h @ short_part if P.mode != "long_only" else cp.Constant(0.0)
        self.penalty_expr = penalty
        objective = self.p_alpha @ w - self.risk_expr - self.tcost_expr - self.hold_expr - penalty
        # Objective terms are ~1e-3 (daily returns) and stay unscaled: scaling the objective
        # up by 10-1000 cost Clarabel more iterations (bench/optimizer.py data, N=3,000).
        problem = cp.Problem(cp.Maximize(objective), cons)
        if not problem.is_dpp():  # pragma: no cover - guarded by tests
            raise RuntimeError("optimization problem is not DPP")
        self._problem = problem

    def _limit_params(self, limits: ResolvedLimits, long_only: bool) -> list[_LimitRows]:
        """The limit tree's bounded group nodes (module docstring): per kind and side, the
        constant sparse membership and a bound parameter (the limits, or the book's own
        level while held)."""
        import scipy.sparse as sp

        out: list[_LimitRows] = []
        for kind in KINDS:
            if long_only and kind == "short":
                continue  # Σmax(−w, 0) = 0 ≤ any short limit
            nodes, lo, hi = limits.rows(kind)
            if not nodes:
                continue
            for side, bound in (("hi", hi), ("lo", lo)):
                keep = np.isfinite(bound)
                if not keep.any():
                    continue
                chosen = [n for n, k in zip(nodes, keep, strict=True) if k]
                out.append(
                    _LimitRows(
                        kind,
                        side,
                        tuple(n.name for n in chosen),
                        sp.csr_array(limits.membership(chosen)),
                        self._cp.Parameter(len(chosen), name=f"limit_{kind}_{side}"),
                        bound[keep],
                    )
                )
        return out

    def _limit_rows(self, w: Any, tw: Any, long_only: bool) -> list[Any]:
        """Hard rows ``M @ x`` ≤ / ≥ the bound parameter of every limit row set; ``x`` the
        node's exposure of ``w`` (``tw`` ≥ |w|; ``w`` itself when long-only)."""
        rows: list[Any] = []
        exposures: dict[str, Any] = {}
        for r in self._limit_meta:
            x = exposures.get(r.kind)
            if x is None:
                if r.kind == "net" or long_only:
                    x = w
                elif r.kind == "gross":
                    x = tw
                elif r.kind == "long":
                    x = (tw + w) / 2
                else:
                    x = (tw - w) / 2
                exposures[r.kind] = x
            rows.append(r.M @ x <= r.param if r.side == "hi" else r.M @ x >= r.param)
        return rows

    def _hold_limits(self, held: bool) -> None:
        """Bound parameters: the limits; or (``held``) each bound widened to the current
        book's own level where the book is beyond it — no node may get worse, as pre-trade
        allows — when the limits cannot all be reached today."""
        w0 = np.asarray(self.p_w0.value, dtype=float) if held else None
        for r in self._limit_meta:
            value = r.bound
            if w0 is not None:
                now = np.asarray(r.M @ exposure(r.kind, w0), dtype=float)
                value = np.maximum(r.bound, now) if r.side == "hi" else np.minimum(r.bound, now)
            r.param.value = value

    def _w_value(self) -> Any:
        if self._last_path == "direct":
            return self._direct_w
        if self._problem is None:
            return None
        v = self.w_var.value
        return None if v is None else np.asarray(v)

    # ------------------------------------------------------------------ inputs

    def _ids_index(self, ids: tuple[str, ...]) -> pd.Index:
        """``ids`` as a pd.Index for reindexing, kept while the universe is the same
        (building it from 3,000 strings costs ~2 ms and prepare aligns seven series)."""
        if self._ids_key != ids:
            self._ids_key, self._ids_idx = ids, pd.Index(list(ids))
        return self._ids_idx

    def prepare(self, inputs: OptimizationInputs) -> _Day:
        """Validate inputs and compute the numeric parameter values (numpy only)."""
        P = self.policy
        rm = inputs.risk_model
        if inputs.universe is not None:
            rm = rm.subset(list(inputs.universe))
        ids = tuple(rm.security_ids)
        if len(ids) != self.n or tuple(rm.factor_names) != self.factor_names:
            raise InputDataError(
                f"optimizer built for N={self.n}, factors={len(self.factor_names)}; got "
                f"N={len(ids)}, factors={len(rm.factor_names)}"
            )
        alpha_s = inputs.alpha.copy()
        if alpha_s.index.inferred_type != "string":
            alpha_s.index = alpha_s.index.map(str)
        target = self._ids_index(ids)
        alpha = alpha_s.reindex(target).to_numpy(dtype=float, na_value=np.nan)
        missing = [ids[i] for i in np.flatnonzero(~np.isfinite(alpha))]
        if missing:
            raise MissingAlphaError(missing)
        cw = inputs.current_weights.astype(float)
        # Vectorised over the held names (a per-item loop over a 3,000-name string index
        # cost 3-10 ms per solve; Index.isin on strings more); NaN weights count as not
        # held, as abs(NaN) > 0 is False.
        held = cw[cw.abs() > 0]
        keys = held.index if held.index.inferred_type == "string" else held.index.map(str)
        if target.is_unique:
            outside = list(held.index[target.get_indexer(keys) < 0])
        else:  # pragma: no cover - security ids are unique
            universe = set(ids)
            outside = [s for s, k in zip(held.index, keys, strict=True) if k not in universe]
        if outside:
            raise InputDataError(
                f"current holdings outside the universe (add them to liquidate): {outside[:25]}"
            )
        w0 = cw.reindex(target).fillna(0.0).to_numpy(dtype=float)
        V = float(inputs.portfolio_value)
        if not (np.isfinite(V) and V > 0):
            raise InputDataError(f"portfolio_value must be positive, got {V}")
        adv = _series(inputs.adv, ids, np.nan, target)
        _require_finite("adv", adv, ids)
        _require_finite("exposures B", rm.B.sum(axis=1), ids)
        _require_finite("specific variance D", rm.D, ids)
        if not np.isfinite(rm.F).all():
            raise InputDataError("factor covariance F has non-finite entries")
        spread = _series(inputs.half_spread, ids, 0.0, target)
        _require_finite("half_spread", spread, ids)
        fee = _series(inputs.borrow_fee, ids, P.default_borrow_fee, target)
        fee = np.where(np.isfinite(fee), fee, P.default_borrow_fee)
        if inputs.volatility is not None:
            vol = _series(inputs.volatility, ids, np.nan, target)
            _require_finite("volatility", vol, ids)
        else:
            # diag(B F Bᵀ) as a row sum: einsum's unoptimised 3-operand loop took ~7 ms at
            # N=3,000, K=40.
            vol = np.sqrt(np.sum((rm.B @ rm.F) * rm.B, axis=1) + rm.D)
        beta_factors = None
        if P.beta_band is not None:
            if inputs.beta is not None:
                beta = _series(inputs.beta, ids, np.nan, target)
                _require_finite("beta", beta, ids)
            elif MARKET in rm.factor_names:
                beta = rm.predicted_beta()
                m = rm.factor_names.index(MARKET)
                beta_factors = np.asarray(rm.F[:, m] / rm.F[m, m], dtype=float)
            else:
                raise InputDataError("beta_band set but no beta given and no market factor")
        else:
            beta = np.zeros(len(ids))

        if P.max_trade_shares is not None and inputs.prices is None:
            raise InputDataError(
                f"policy {P.name} caps trades in shares (max_trade_shares): prices needed"
            )
        price = _series(inputs.prices, ids, np.nan, target)
        lo, hi = self._bounds(w0, adv, V, ids, inputs.restricted, price)
        return _Day(
            ids=ids,
            alpha=alpha,
            w0=w0,
            B=rm.B,
            L=psd_cholesky(rm.F),
            spec_vol=np.sqrt(np.maximum(rm.D, 0.0)),
            a=costs.linear_cost_coef(spread, P.commission),
            b=costs.impact_coef(vol, adv, V, P.impact_coefficient),
            h=costs.holding_cost_coef(fee, P.periods_per_year),
            lo=lo,
            hi=hi,
            beta=beta,
            beta_factors=beta_factors,
        )

    def _bounds(
        self,
        w0: FloatArray,
        adv: FloatArray,
        V: float,
        ids: Sequence[str],
        restricted: frozenset[str],
        price: FloatArray | None = None,
    ) -> tuple[FloatArray, FloatArray]:
        """Hard per-name bounds: position ∩ %ADV ∩ security limits ∩ trade caps
        (participation, per-order notional and shares) ∩ long-only ∩ restricted ∩ no-trade."""
        P = self.policy
        cap = np.full(len(ids), P.max_position)
        if P.max_position_adv is not None:
            cap = np.minimum(cap, P.max_position_adv * np.maximum(adv, 0.0) / V)
        lo = np.zeros_like(cap) if P.mode == "long_only" else -cap
        hi = cap.copy()
        if self._limits is not None:
            lo = np.maximum(lo, self._limits.name_lo)
            hi = np.minimum(hi, self._limits.name_hi)
            # A security bound that excludes the policy's range pins the name at the
            # nearest point the bound allows.
            lo = np.minimum(lo, hi)
        t = np.full(len(ids), np.inf)
        if P.participation is not None:
            t = np.minimum(t, P.participation * np.maximum(adv, 0.0) / V)
        if P.max_trade_notional is not None:
            t = np.minimum(t, P.max_trade_notional / V)
        if P.max_trade_shares is not None and price is not None:
            px = np.where(np.isfinite(price) & (price > 0), price, np.inf)
            t = np.minimum(t, P.max_trade_shares * px / V)
        if np.isfinite(t).any():
            tlo, thi = w0 - t, w0 + t
            # If today's trade limit cannot reach the position band, go as far as allowed.
            below, above = thi < lo, tlo > hi
            lo = np.where(below, thi, np.where(above, tlo, np.maximum(lo, tlo)))
            hi = np.where(below, thi, np.where(above, tlo, np.minimum(hi, thi)))
        r = np.array([s in restricted for s in ids], dtype=bool)
        if r.any():
            if P.restricted_mode == "exclude":
                # Compliance overrides liquidity limits: restricted names go to 0 now.
                lo[r], hi[r] = 0.0, 0.0
            else:
                lo[r] = np.maximum(lo[r], np.minimum(w0[r], 0.0))
                hi[r] = np.minimum(hi[r], np.maximum(w0[r], 0.0))
                lo[r] = np.minimum(lo[r], hi[r])
        no_trade = set(P.no_trade)
        frozen = np.array([s in no_trade for s in ids], dtype=bool)
        if frozen.any():
            lo[frozen], hi[frozen] = w0[frozen], w0[frozen]
        return lo, hi

    # ------------------------------------------------------------------ solve

    def _set_parameters(self, d: _Day) -> None:
        P = self.policy
        sl = float(np.sqrt(P.risk_aversion))
        self.p_alpha.value = d.alpha
        self.p_B.value = d.B[:, self._free_idx]
        self._B = d.B
        self.p_L.value = sl * d.L
        self.p_sig.value = sl * d.spec_vol
        self.p_w0.value = d.w0
        self.p_a.value = P.cost_aversion * d.a
        self.p_b.value = P.cost_aversion * d.b
        self.p_h.value = P.holding_aversion * d.h
        self.p_lo.value = d.lo
        self.p_hi.value = d.hi
        self.p_net.value = np.array([P.net_exposure.lo, P.net_exposure.hi])
        if len(self._bounded_idx):
            flo, fhi = self._factor_band()
            self.p_flo.value, self.p_fhi.value = flo, fhi
        self._beta_factors = d.beta_factors
        if P.beta_band is not None:
            self.p_beta.value = d.beta
            self.p_bband.value = np.array([P.beta_band.lo, P.beta_band.hi])
        if P.turnover_cap is not None:
            self.p_turn.value = P.turnover_cap

    def _factor_band(self) -> tuple[FloatArray, FloatArray]:
        P = self.policy
        lo, hi = [], []
        for k in self._bounded_idx:
            f = self.factor_names[k]
            if f.startswith(SECTOR_PREFIX):
                band = P.sector_overrides.get(f[len(SECTOR_PREFIX) :], P.sector_bounds)
            else:
                band = P.factor_bounds[f]
            assert band is not None
            lo.append(band.lo)
            hi.append(band.hi)
        return np.array(lo), np.array(hi)

    def _open_slacks(self, groups: Sequence[str]) -> None:
        P = self.policy
        for g, (u, pen) in self._soft.items():
            size = u.shape[0]
            width = _WIDEN * max(P.gross_leverage, 1.0) if g in groups else 0.0
            u.value = np.full(size, width)
            pen.value = np.full(size, P.relaxation_penalty * width)

    def _call(self, stage: str, groups: tuple[str, ...]) -> tuple[SolveRecord, str]:
        """Run the solver chain; return the record of the answer used and its status.

        The chain's plain ``CLARABEL`` entry runs the direct cone program
        (:mod:`pipelines.portfolio.direct`) whenever no soft group is open (the slacks are
        then inert and the direct program is the same problem); every other entry, and
        relaxed solves, go through the compiled cvxpy problem."""
        records: list[SolveRecord] = []
        last_status = "error"
        direct_ok = self._direct is not None and not any(g in self._soft for g in groups)
        for solver in self.policy.solvers:
            opts = dict(self.policy.solver_options.get(solver, {}))
            if direct_ok and solver.upper() == "CLARABEL":
                rec = self._direct_call(stage, groups, solver, opts)
            else:
                rec = self._cvxpy_call(stage, groups, solver, opts)
            status = rec.status
            records.append(rec)
            last_status = status
            if status in ("optimal", "optimal_inaccurate"):
                problem = self._audit(groups)
                if problem is None:
                    # "optimal_inaccurate" (Clarabel AlmostSolved: reduced tolerances met)
                    # is accepted only because every constraint was re-verified here.
                    last_status = "optimal"
                    break
                records[-1] = replace(rec, status="rejected_by_audit", message=problem)
                last_status = "inaccurate"
                continue
            if status == "infeasible":
                # A primal infeasibility certificate is trusted; no fallback needed.
                break
        self._records.extend(records)
        return records[-1], last_status

    def _direct_call(
        self, stage: str, groups: tuple[str, ...], solver: str, opts: dict[str, Any]
    ) -> SolveRecord:
        """One solve of the direct cone program (its weights become ``_w_value``)."""
        assert self._direct is not None
        t0 = time.perf_counter()
        via_factors = self._beta_factors is not None
        if self._direct.has_beta and self._direct.beta_via_factors != via_factors:
            self._direct = DirectProblem(self, beta_via_factors=via_factors)
        try:
            sol = self._direct.solve(opts)
        except (ValueError, ArithmeticError, RuntimeError) as exc:  # pragma: no cover
            self._direct_w = None
            self._last_path = "direct"
            return SolveRecord(
                stage=stage,
                solver=solver,
                status="solver_error",
                solve_time=time.perf_counter() - t0,
                solver_time=None,
                objective=None,
                relaxed_groups=groups,
                message=f"{type(exc).__name__}: {exc}"[:300],
                path="direct",
            )
        self._direct_w = sol.w
        self._last_path = "direct"
        return SolveRecord(
            stage=stage,
            solver=solver,
            status=sol.status,
            solve_time=time.perf_counter() - t0,
            solver_time=sol.solver_seconds,
            objective=sol.objective,
            relaxed_groups=groups,
            iterations=sol.iterations,
            path="direct",
        )

    def _cvxpy_call(
        self, stage: str, groups: tuple[str, ...], solver: str, opts: dict[str, Any]
    ) -> SolveRecord:
        """One solve of the compiled cvxpy problem (compiled on its first use)."""
        cp = self._cp
        instance = self._solvers[solver]
        if hasattr(instance, "last_solve_seconds"):
            instance.last_solve_seconds = None
        self._last_path = "cvxpy"
        t0 = time.perf_counter()
        try:
            # COO backend + O(nnz) cone formatting: compile cost is linear in the
            # size of B (see pipelines.portfolio.solvers); warm_start lets cvxpy reuse
            # the Clarabel instance (same sparsity, new numbers).
            with warnings.catch_warnings():
                # Inaccurate statuses are recorded and handled by the fallback chain.
                warnings.simplefilter("ignore", UserWarning)
                warnings.simplefilter("ignore", RuntimeWarning)
                self.problem.solve(
                    solver=instance,
                    canon_backend="COO",
                    warm_start=True,
                    **opts,
                )
            status = str(self.problem.status)
            msg = ""
        except (cp.error.SolverError, ValueError, ArithmeticError) as exc:
            status, msg = "solver_error", f"{type(exc).__name__}: {exc}"[:300]
        elapsed = time.perf_counter() - t0
        self.compiled = True
        stats = self.problem.solver_stats if status != "solver_error" else None
        return SolveRecord(
            stage=stage,
            solver=solver,
            status=status,
            solve_time=elapsed,
            solver_time=getattr(
                instance,
                "last_solve_seconds",
                stats.solve_time if stats is not None else None,
            ),
            objective=(
                float(self.problem.value) if status in ("optimal", "optimal_inaccurate") else None
            ),
            relaxed_groups=groups,
            message=msg,
            iterations=(
                int(stats.num_iters) if stats is not None and stats.num_iters is not None else None
            ),
        )

    def _audit(self, groups: Sequence[str]) -> str | None:
        """Re-check the returned w against every hard constraint and every soft constraint
        that is not currently relaxed (tolerance ``_FEAS_TOL``, ``_SUM_TOL`` for gross and
        turnover); None if all hold."""
        w = self._w_value()
        if w is None or not np.isfinite(w).all():
            return "no finite solution"
        P = self.policy
        tol = _FEAS_TOL
        lo, hi = np.asarray(self.p_lo.value), np.asarray(self.p_hi.value)
        if np.any(w < lo - tol) or np.any(w > hi + tol):
            return "position bounds violated"
        if np.abs(w).sum() > P.gross_leverage + _SUM_TOL:
            return "gross leverage violated"
        if "net_exposure" not in groups and not (
            P.net_exposure.lo - tol <= w.sum() <= P.net_exposure.hi + tol
        ):
            return f"net exposure {w.sum():.6f} violated"
        if len(self._bounded_idx):
            y = (self._B.T @ w)[self._bounded_idx]
            flo, fhi = self._factor_band()
            for i, g in enumerate(self._bounded_group):
                if g not in groups and not (flo[i] - tol <= y[i] <= fhi[i] + tol):
                    return f"{self.factor_names[self._bounded_idx[i]]} exposure violated"
        if P.beta_band is not None and "beta" not in groups:
            b = float(np.asarray(self.p_beta.value) @ w)
            if not (P.beta_band.lo - tol <= b <= P.beta_band.hi + tol):
                return f"beta {b:.6f} violated"
        for r in self._limit_meta:
            val = np.asarray(r.M @ exposure(r.kind, w), dtype=float)
            lim = np.asarray(r.param.value, dtype=float)
            out = val > lim + _SUM_TOL if r.side == "hi" else val < lim - _SUM_TOL
            if out.any():
                i = int(np.flatnonzero(out)[0])
                return f"limit {r.nodes[i]} {r.kind} {val[i]:.6f} violated (bound {lim[i]:.6f})"
        if P.turnover_cap is not None and "turnover" not in groups:
            t = float(np.abs(w - np.asarray(self.p_w0.value)).sum())
            if t > P.turnover_cap + _SUM_TOL:
                return f"turnover {t:.6f} violated"
        return None

    def solve(self, inputs: OptimizationInputs) -> OptimizationResult:
        """Solve one day's problem (with relaxation and cardinality heuristic)."""
        d = self.prepare(inputs)
        return self.solve_prepared(d, pd.Timestamp(inputs.date))

    def solve_prepared(self, d: _Day, date: pd.Timestamp) -> OptimizationResult:
        P = self.policy
        if len(self._fixed_idx) and not np.array_equal(d.B[:, self._fixed_idx], self._fixed_B):
            changed = np.flatnonzero((d.B[:, self._fixed_idx] != self._fixed_B).any(axis=1))
            raise StructureChangedError(
                "market/sector exposures differ from the compiled structure for "
                f"{[d.ids[i] for i in changed[:25]]}: build a new optimizer for this universe"
            )
        self._records: list[SolveRecord] = []
        self._set_parameters(d)
        status, groups = self._solve_relaxing("base")
        message = ""
        if status == "optimal" and P.max_names is not None:
            w = np.asarray(self._w_value())
            n_names = int((np.abs(w) > P.name_threshold).sum())
            if n_names > P.max_names:
                keep = np.zeros(self.n, dtype=bool)
                keep[np.argsort(-np.abs(w))[: P.max_names]] = True
                keep |= (d.lo > 0) | (d.hi < 0)
                first_groups = groups
                self.p_lo.value = np.where(keep, d.lo, 0.0)
                self.p_hi.value = np.where(keep, d.hi, 0.0)
                status, groups = self._solve_relaxing("cardinality")
                if status != "optimal" and P.is_soft("max_names"):
                    # Fall back to the unrestricted solution and report the excess.
                    self.p_lo.value, self.p_hi.value = d.lo, d.hi
                    status, groups = self._solve_relaxing("base")
                    message = f"max_names relaxed: {n_names} names (limit {P.max_names})"
                    groups = (*first_groups, "max_names")
        if status != "optimal":
            return OptimizationResult(
                date=date,
                policy=P.name,
                security_ids=d.ids,
                status="infeasible" if status == "infeasible" else "error",
                weights=None,
                current_weights=d.w0,
                alpha=d.alpha,
                solves=tuple(self._records),
                message=(
                    "hard constraints infeasible (all soft constraints relaxed)"
                    if status == "infeasible"
                    else f"no solver produced a usable solution (last status {status})"
                ),
            )
        w = np.asarray(self._w_value(), dtype=float).copy()
        relax = self._relaxations(groups)
        if "max_names" in groups:
            n_names = int((np.abs(w) > P.name_threshold).sum())
            relax.append(
                Relaxation(
                    "max_names",
                    "max_names",
                    float(P.max_names or 0),
                    float(n_names - (P.max_names or 0)),
                )
            )
        terms = self._terms(d, w)
        solver = next(
            (
                r.solver
                for r in reversed(self._records)
                if r.status in ("optimal", "optimal_inaccurate")
            ),
            None,
        )
        return OptimizationResult(
            date=date,
            policy=P.name,
            security_ids=d.ids,
            status="relaxed" if relax else "optimal",
            weights=w,
            current_weights=d.w0,
            alpha=d.alpha,
            solves=tuple(self._records),
            relaxations=tuple(relax),
            terms=terms,
            solver=solver,
            message=message,
            diagnostics={
                "gross": float(np.abs(w).sum()),
                "net": float(w.sum()),
                "turnover": float(np.abs(w - d.w0).sum()),
                "names": float((np.abs(w) > P.name_threshold).sum()),
            },
        )

    def _solve_relaxing(self, stage: str) -> tuple[str, tuple[str, ...]]:
        """Solve with all soft constraints tight, then open groups in priority order."""
        order = [g for g in self.policy.relaxation_order if g in self._soft]
        status = "error"
        self._hold_limits(False)
        for i in range(len(order) + 1):
            groups = tuple(order[:i])
            self._open_slacks(groups)
            label = stage if i == 0 else f"{stage}+relax:{','.join(groups)}"
            _, status = self._call(label, groups)
            if status == "optimal":
                return status, groups
            if status != "infeasible":
                # Numerical failure of every solver in the chain: widening soft constraints
                # cannot make the answer trustworthy, so stop and report an error.
                return status, groups
        if self._limit_meta:
            # The book may start beyond a limit that today's trade caps cannot bring it
            # back within: hold such nodes at their current level (never worse), every
            # soft group still open, and report it as a relaxation of "limits".
            self._hold_limits(True)
            held: tuple[str, ...] = (*order, LIMITS_GROUP)
            _, status = self._call(f"{stage}+limits_held", held)
            if status == "optimal":
                return status, held
            self._hold_limits(False)
        return status, tuple(order)

    def _relaxations(self, groups: Sequence[str]) -> list[Relaxation]:
        out: list[Relaxation] = []
        if LIMITS_GROUP in groups:
            for r in self._limit_meta:
                amount = np.abs(np.asarray(r.param.value, dtype=float) - r.bound)
                for node, lim, amt in zip(r.nodes, r.bound, amount, strict=True):
                    if amt > _RELAX_TOL:
                        out.append(
                            Relaxation(
                                LIMITS_GROUP, f"{node}:{r.kind}:{r.side}", float(lim), float(amt)
                            )
                        )
        for g in groups:
            if g not in self._soft:
                continue
            # A group is open only in a cvxpy solve: the problem and its slacks exist.
            s, (u, _) = self._slack_vars[g], self._soft[g]
            amount = np.asarray(u.value) * np.clip(np.asarray(s.value), 0, 1)
            labels, limits = self._slack_labels(g)
            for lab, lim, amt in zip(labels, limits, amount, strict=True):
                if amt > _RELAX_TOL:
                    out.append(Relaxation(g, lab, lim, float(amt)))
        return out

    def _slack_labels(self, group: str) -> tuple[list[str], list[float]]:
        P = self.policy
        if group == "turnover":
            return ["turnover"], [float(P.turnover_cap or 0.0)]
        if group == "net_exposure":
            return ["net_exposure:lo", "net_exposure:hi"], [P.net_exposure.lo, P.net_exposure.hi]
        if group == "beta":
            assert P.beta_band is not None
            return ["beta:lo", "beta:hi"], [P.beta_band.lo, P.beta_band.hi]
        flo, fhi = self._factor_band()
        rows = [i for i, g in enumerate(self._bounded_group) if g == group]
        names = [self.factor_names[self._bounded_idx[i]] for i in rows]
        return (
            [f"{n}:lo" for n in names] + [f"{n}:hi" for n in names],
            [float(flo[i]) for i in rows] + [float(fhi[i]) for i in rows],
        )

    def _terms(self, d: _Day, w: FloatArray) -> ObjectiveTerms:
        P = self.policy
        y = d.B.T @ w
        fvar = float(np.sum((d.L.T @ y) ** 2))
        svar = float(np.sum((d.spec_vol * w) ** 2))
        z = w - d.w0
        # No cvxpy solve yet (the problem not even built): no slack has a value.
        penalty = 0.0 if self._problem is None else self.penalty_expr
        pen = penalty.value if hasattr(penalty, "value") else 0.0
        return ObjectiveTerms(
            alpha=float(d.alpha @ w),
            risk=P.risk_aversion * (fvar + svar),
            factor_var=fvar,
            specific_var=svar,
            transaction_cost=P.cost_aversion * costs.transaction_cost(z, d.a, d.b),
            holding_cost=P.holding_aversion * costs.holding_cost(w, d.h),
            penalty=float(pen or 0.0),
        )


_CACHE: dict[tuple[str, int, tuple[str, ...], str], PortfolioOptimizer] = {}
# Compiled problems kept per process (one per policy × universe structure); the oldest
# goes first, so a backtest whose universe drifts does not accumulate them.
_CACHE_SIZE = 4


def get_optimizer(
    policy: Policy,
    n_assets: int,
    factor_names: Sequence[str],
    fixed_exposures: FloatArray | None = None,
    limits: ResolvedLimits | None = None,
) -> PortfolioOptimizer:
    """Process-wide cache: one compiled problem per (policy, N, factors, structure,
    limit-tree membership)."""
    import hashlib

    digest = (
        ""
        if fixed_exposures is None
        else hashlib.sha256(
            np.ascontiguousarray(fixed_exposures, dtype=float).tobytes()
        ).hexdigest()
    )
    if limits is not None:
        digest += ":" + limits.digest()
    key = (policy.model_dump_json(), n_assets, tuple(factor_names), digest)
    opt = _CACHE.get(key)
    if opt is None:
        opt = PortfolioOptimizer(
            policy, n_assets, factor_names, fixed_exposures=fixed_exposures, limits=limits
        )
        while len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = opt
    return opt


def optimize(policy: Policy, inputs: OptimizationInputs) -> OptimizationResult:
    """Convenience: fetch (or build) the cached optimizer for the universe's market/sector
    structure and limit-tree membership, and solve ``inputs``."""
    rm = inputs.risk_model
    if inputs.universe is not None:
        rm = rm.subset(list(inputs.universe))
    limits = (
        None if policy.limits is None else _resolved_limits(policy.limits, rm, inputs.attributes)
    )
    return get_optimizer(
        policy, rm.n_assets, rm.factor_names, structural_exposures(rm), limits
    ).solve(inputs)
