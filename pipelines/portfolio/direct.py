"""The optimizer's problem handed to Clarabel directly: a leaner cone program, no cvxpy.

Why this module exists
----------------------
A warm re-solve through cvxpy spends ~94% of its time in Clarabel's interior-point
iterations (bench/optimizer.py, N=3,000), so the lever is the size and conditioning of the
cone program, not the Python around it. cvxpy's canonicalisation of
:class:`~pipelines.portfolio.optimizer.PortfolioOptimizer`'s problem has 6 variables and
13 cone rows per name; written by hand the same problem has 5 and 12:

* specific risk ``λ Σ σ_i² w_i²`` is a diagonal of Clarabel's ``P`` (cvxpy adds a copy
  ``v = σ∘w`` and an equality row per name, because a parametrised ``P`` diagonal is
  slow to compile there) and factor risk ``λ yᵀ L Lᵀ y`` a dense K×K block of ``P``;
* the net exposure band sits on the market factor's ``y_m`` (its exposure column is all
  ones, so ``y_m = Σw``), and when the sector columns add up to the market column the
  market row is ``y_m = Σ_s y_s`` (12 entries, not N); the beta band sits on ``cᵀy``
  when β is the risk model's predicted beta ``B·c`` (K entries), else on a scalar
  ``βᵀw`` (one row over all names; the program is rebuilt when a day switches between
  the two). cvxpy writes both sides of each band as a dense row over all N names: four
  dense rows that every name's column carries into the KKT factorisation, now none
  beyond the style rows, gross and turnover;
* ``|z|^{3/2} ≤ t`` is the same two 3-dim second-order cones per name as cvxpy's
  (``|z|² ≤ s·t/√c`` and ``s² ≤ c·|z|``), with the constant ``c = 0.01`` put at the
  scale of a day's trade: with c = 1 (cvxpy's scaling) s ≈ √|z| and t ≈ |z|^{3/2} differ
  by two orders of magnitude and Clarabel ends ``AlmostSolved`` after ~30 iterations;
  scaled, it ends ``Solved`` after ~23.

Only the soft-constraint slacks are left out: with every soft group tight (``u = 0``, the
first solve of a day and all that a well-posed day needs) they are identically inert
variables. Relaxed solves (a slack opened) run through cvxpy, as before.

Every number is read from the optimizer's cvxpy parameters, so this program and the cvxpy
one are the same problem by construction (tests compare their weights). The sparsity
structure is fixed per optimizer (universe, policy, compiled market/sector columns,
limit-tree membership); each solve rebuilds only the value arrays and calls Clarabel's
``update`` (no new symbolic factorisation), like cvxpy's warm start does.

Measured and not kept (N=3,000, dumped problem data, Clarabel 0.11):

* screening names whose bounds fix them (restricted, no-trade: lo = hi) out of the program:
  5 of 3,000 names on a bench day, and a different set every day changes the sparsity
  structure, i.e. a new Clarabel setup (AMD ordering, ~0.5 s) instead of a data update;
* one 3D power cone per name for |z|^{3/2} (3 rows, no s): cheaper iterations but 23-30 of
  them, and ``InsufficientProgress`` unscaled;
* Clarabel settings: ``direct_solve_method="faer"`` (1 or 2 threads), presolve off,
  more equilibration passes, ``max_step_fraction`` 0.995/0.999, looser ``tol_ktratio``:
  same or more iterations, no faster;
* splitting each exposure row in two (below AMD's dense-row threshold) halves the flops of
  a stand-alone QDLDL factorisation of this KKT system but not Clarabel's solve time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

FloatArray = np.ndarray

# Scale of the impact cones (a typical |z|, fractions of NAV); see the module docstring.
IMPACT_CONE_SCALE = 0.01

# Clarabel status -> cvxpy's status names (the optimizer's fallback chain speaks cvxpy's).
_STATUS = {
    "Solved": "optimal",
    "AlmostSolved": "optimal_inaccurate",
    "PrimalInfeasible": "infeasible",
    "AlmostPrimalInfeasible": "infeasible_inaccurate",
    "DualInfeasible": "unbounded",
    "AlmostDualInfeasible": "unbounded_inaccurate",
    "MaxIterations": "user_limit",
    "MaxTime": "user_limit",
}


@dataclass(frozen=True)
class DirectSolution:
    """Outcome of one direct solve: cvxpy-style status, weights (None unless a solution),
    objective of the *maximisation* (None unless a solution), Clarabel iterations and the
    wall seconds of Clarabel's update + solve alone."""

    status: str
    w: FloatArray | None
    objective: float | None
    iterations: int
    solver_seconds: float


# ``opt`` below is a pipelines.portfolio.optimizer.PortfolioOptimizer, typed Any: the
# optimizer imports this module, and the layering contract allows no import cycle (not even
# a typing-only one).


def supported(opt: Any) -> bool:
    """Whether ``opt``'s problem can be written directly (the 3D power-cone impact variant
    and chains without Clarabel stay on cvxpy)."""
    P = opt.policy
    return (not P.impact_power_cone) and any(s.upper() == "CLARABEL" for s in P.solvers)


class _Coo:
    """Row/column/value blocks of a sparse matrix, assembled in a fixed order."""

    def __init__(self) -> None:
        self.rows: list[FloatArray] = []
        self.cols: list[FloatArray] = []
        self.vals: list[FloatArray] = []

    def add(self, rows: Any, cols: Any, vals: Any) -> None:
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        self.rows.append(rows)
        self.cols.append(cols)
        self.vals.append(np.broadcast_to(np.asarray(vals, dtype=float), rows.shape))

    def arrays(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        return (
            np.concatenate(self.rows),
            np.concatenate(self.cols),
            np.concatenate(self.vals),
        )


class _Pattern:
    """A CSC sparsity pattern fixed once; ``matrix(values in COO order)`` fills it."""

    def __init__(self, rows: FloatArray, cols: FloatArray, shape: tuple[int, int]) -> None:
        order = np.lexsort((rows, cols))
        self.order = order
        self.indices = rows[order].astype(np.int64)
        self.indptr = np.concatenate(
            [[0], np.cumsum(np.bincount(cols, minlength=shape[1]))]
        ).astype(np.int64)
        self.shape = shape
        if len(rows) and np.any(
            (np.diff(cols[order]) == 0) & (np.diff(self.indices) == 0)
        ):  # pragma: no cover - construction guarantees unique entries
            raise RuntimeError("duplicate entries in a direct cone-program pattern")

    def matrix(self, coo_values: FloatArray) -> Any:
        # Explicit zeros are kept: Clarabel's update needs the pattern of the first setup.
        return sp.csc_matrix((coo_values[self.order], self.indices, self.indptr), shape=self.shape)


class DirectProblem:
    """The cone program of one :class:`PortfolioOptimizer` (fixed structure), solved with
    Clarabel from the optimizer's current parameter values."""

    def __init__(self, opt: Any, beta_via_factors: bool = False) -> None:
        P = opt.policy
        N, K = opt.n, len(opt.factor_names)
        self.opt = opt
        self.long_only = P.mode == "long_only"
        self.has_beta = P.beta_band is not None
        # βᵀw written as cᵀy (K coefficients, opt._beta_factors) instead of a row over all
        # N names: valid on days whose β is B·c (the risk model's predicted beta).
        self.beta_via_factors = self.has_beta and beta_via_factors
        self.has_turnover = P.turnover_cap is not None
        nb = len(opt._bounded_idx)

        # Exposure entries: the free (daily) columns dense, the compiled market/sector
        # columns with their constant nonzeros.
        fixed = np.asarray(opt._fixed_B, dtype=float)
        fixed_idx = np.asarray(opt._fixed_idx, dtype=int)
        # A compiled column of ones (the market factor) is y_m = Σw: the net exposure band
        # is put on y_m (no second all-names row); and when the other compiled columns
        # (sectors) add up to it, y_m = Σ_s y_s replaces y_m = 1ᵀw (12 entries, not N).
        all_ones = [j for j in range(fixed.shape[1]) if np.all(fixed[:, j] == 1.0)]
        self._ones_col = int(fixed_idx[all_ones[0]]) if all_ones else -1
        parts: list[int] = []
        if all_ones and fixed.shape[1] > 1:
            others = [j for j in range(fixed.shape[1]) if j != all_ones[0]]
            if np.array_equal(fixed[:, others].sum(axis=1), fixed[:, all_ones[0]]):
                parts = others
        expanded = fixed.copy()
        if parts:
            expanded[:, all_ones[0]] = 0.0
        fixed_B = sp.coo_array(expanded)

        # Variables: w, |z|, |w| (long-short), t ≥ |z|^{3/2}, s (impact cones), y = Bᵀw,
        # Σw (unless y_m is), βᵀw (unless written through y).
        nxt = 0

        def block(size: int) -> FloatArray:
            nonlocal nxt
            idx = np.arange(nxt, nxt + size)
            nxt += size
            return idx

        self.iw, self.itz = block(N), block(N)
        self.itw = self.iw if self.long_only else block(N)
        self.it, self.isv = block(N), block(N)
        self.iy = block(K)
        self.inet = int(self.iy[self._ones_col]) if self._ones_col >= 0 else int(block(1)[0])
        self.ibeta = int(block(1)[0]) if self.has_beta and not self.beta_via_factors else -1
        self.n_vars = nxt
        iw, itz, itw, it, isv, iy = self.iw, self.itz, self.itw, self.it, self.isv, self.iy

        self._free_cols = np.asarray(opt._free_idx, dtype=int)
        self._fixed_rows = fixed_B.row
        self._fixed_cols = fixed_idx[fixed_B.col]
        self._fixed_vals = fixed_B.data
        n_free = len(self._free_cols)

        A = _Coo()
        row = 0

        def rows(count: int) -> FloatArray:
            nonlocal row
            r = np.arange(row, row + count)
            row += count
            return r

        # ---- zero cone: y − Bᵀw = 0 (y_m − Σ_s y_s = 0), Σw − net = 0, βᵀw − b = 0
        ry = rows(K)
        self._a_free = len(A.vals)  # index of the block holding −B_free (daily values)
        wf, kf = np.meshgrid(np.arange(N), np.arange(n_free), indexing="ij")
        A.add(ry[self._free_cols[kf.ravel()]], iw[wf.ravel()], 0.0)
        A.add(ry[self._fixed_cols], iw[self._fixed_rows], -self._fixed_vals)
        if parts:
            A.add(np.full(len(parts), ry[self._ones_col]), iy[fixed_idx[parts]], -1.0)
        A.add(ry, iy, 1.0)
        if self._ones_col < 0:
            rn = rows(1)
            A.add(np.full(N, rn[0]), iw, -1.0)
            A.add(rn, [self.inet], 1.0)
        self._a_beta = -1
        if self.has_beta and not self.beta_via_factors:
            rb = rows(1)
            self._a_beta = len(A.vals)
            A.add(np.full(N, rb[0]), iw, 0.0)
            A.add(rb, [self.ibeta], 1.0)
        self.n_zero = row

        # ---- nonnegative cone (b − A x ≥ 0)
        ones = np.ones(N)
        self._r_tz = rows(2 * N)  # w − |z| ≤ w0 ; −w − |z| ≤ −w0
        A.add(self._r_tz[:N], iw, ones)
        A.add(self._r_tz[:N], itz, -ones)
        A.add(self._r_tz[N:], iw, -ones)
        A.add(self._r_tz[N:], itz, -ones)
        if not self.long_only:  # w − |w| ≤ 0 ; −w − |w| ≤ 0
            r = rows(2 * N)
            A.add(r[:N], iw, ones)
            A.add(r[:N], itw, -ones)
            A.add(r[N:], iw, -ones)
            A.add(r[N:], itw, -ones)
        self._r_bounds = rows(2 * N)  # −w ≤ −lo ; w ≤ hi
        A.add(self._r_bounds[:N], iw, -ones)
        A.add(self._r_bounds[N:], iw, ones)
        self._r_gross = rows(1)  # Σ|w| ≤ G (Σw when long-only)
        A.add(np.full(N, self._r_gross[0]), itw, ones)
        self._r_turn = rows(1) if self.has_turnover else np.zeros(0, dtype=int)
        if self.has_turnover:  # Σ|z| ≤ T
            A.add(np.full(N, self._r_turn[0]), itz, ones)
        self._r_net = rows(2)
        A.add(self._r_net, [self.inet, self.inet], [-1.0, 1.0])
        self._r_beta = rows(2) if self.has_beta else np.zeros(0, dtype=int)
        if self.beta_via_factors:  # −cᵀy ≤ −β_lo ; cᵀy ≤ β_hi (c: daily values)
            self._a_beta = len(A.vals)
            A.add(np.full(K, self._r_beta[0]), iy, 0.0)
            A.add(np.full(K, self._r_beta[1]), iy, 0.0)
        elif self.has_beta:
            A.add(self._r_beta, [self.ibeta, self.ibeta], [-1.0, 1.0])
        self._r_factor = rows(2 * nb)
        if nb:
            yb = iy[np.asarray(opt._bounded_idx, dtype=int)]
            A.add(self._r_factor[:nb], yb, -1.0)
            A.add(self._r_factor[nb:], yb, 1.0)
        # Hierarchical limits: M @ x ≤ p ("hi") or M @ x ≥ p ("lo"), x from (w, |w|).
        self._r_limits: list[FloatArray] = []
        for meta in opt._limit_meta:
            M = sp.coo_array(meta.M)
            r = rows(M.shape[0])
            sign = 1.0 if meta.side == "hi" else -1.0
            cw, ctw = _exposure_coefficients(meta.kind, self.long_only)
            if cw:
                A.add(r[M.row], iw[M.col], sign * cw * M.data)
            if ctw:
                A.add(r[M.row], itw[M.col], sign * ctw * M.data)
            self._r_limits.append(r)
        self.n_nonneg = row - self.n_zero

        # ---- second-order cones, two per name: (s + t/√c, s − t/√c, 2|z|) and
        # (|z| + c, |z| − c, 2s), i.e. |z|² ≤ s·t/√c and s² ≤ c·|z| ⇒ t ≥ |z|^{3/2}.
        c = IMPACT_CONE_SCALE
        rc = 1.0 / np.sqrt(c)
        k = row + 6 * np.arange(N)
        row += 6 * N
        A.add(k, isv, -ones)
        self._a_it = len(A.vals)
        A.add(k, it, -rc)
        A.add(k + 1, isv, -ones)
        A.add(k + 1, it, rc)
        A.add(k + 2, itz, -2.0)
        A.add(k + 3, itz, -ones)
        A.add(k + 4, itz, -ones)
        A.add(k + 5, isv, -2.0)
        self._soc_b = np.zeros(6 * N)
        self._soc_b[3::6] = c
        self._soc_b[4::6] = -c
        self.n_rows = row

        self._A = A
        a_rows, a_cols, self._a_vals = A.arrays()
        self._A_pattern = _Pattern(a_rows, a_cols, (self.n_rows, self.n_vars))
        self._a_offsets = np.concatenate([[0], np.cumsum([len(v) for v in A.vals])])

        # P (upper triangle): 2λσ² on w, 2λ L Lᵀ (dense upper triangle) on y.
        iu, ju = np.triu_indices(K)
        p_rows = np.concatenate([iw, iy[iu]])
        p_cols = np.concatenate([iw, iy[ju]])
        self._triu = (iu, ju)
        self._P_pattern = _Pattern(p_rows, p_cols, (self.n_vars, self.n_vars))
        self._solver: Any = None

    # ------------------------------------------------------------------ data

    def _values(self) -> tuple[Any, FloatArray, Any, FloatArray]:
        """P, q, A, b from the optimizer's current parameter values."""
        opt = self.opt
        N = opt.n
        val = lambda p: np.asarray(p.value, dtype=float)  # noqa: E731

        sig, L = val(opt.p_sig), val(opt.p_L)
        F2 = 2.0 * (L @ L.T)
        P = self._P_pattern.matrix(np.concatenate([2.0 * sig**2, F2[self._triu]]))

        q = np.zeros(self.n_vars)
        h = val(opt.p_h)
        q[self.iw] = -val(opt.p_alpha)
        q[self.itz] = val(opt.p_a)
        q[self.it] = val(opt.p_b)
        if not self.long_only:
            # Borrow cost on w₋ = (|w| − w)/2.
            q[self.iw] -= h / 2
            q[self.itw] += h / 2

        a = self._a_vals.copy()
        o = self._a_offsets
        a[o[self._a_free] : o[self._a_free + 1]] = -val(opt.p_B).ravel()
        if self.beta_via_factors:
            c = np.asarray(opt._beta_factors, dtype=float)
            a[o[self._a_beta] : o[self._a_beta + 2]] = np.concatenate([-c, c])
        elif self.has_beta:
            a[o[self._a_beta] : o[self._a_beta + 1]] = -val(opt.p_beta)
        A = self._A_pattern.matrix(a)

        w0, lo, hi = val(opt.p_w0), val(opt.p_lo), val(opt.p_hi)
        b = np.zeros(self.n_rows)
        b[self._r_tz[:N]] = w0
        b[self._r_tz[N:]] = -w0
        b[self._r_bounds[:N]] = -lo
        b[self._r_bounds[N:]] = hi
        b[self._r_gross] = opt.policy.gross_leverage
        if self.has_turnover:
            b[self._r_turn] = float(val(opt.p_turn))
        net = val(opt.p_net)
        b[self._r_net] = [-net[0], net[1]]
        if self.has_beta:
            band = val(opt.p_bband)
            b[self._r_beta] = [-band[0], band[1]]
        nb = len(opt._bounded_idx)
        if nb:
            b[self._r_factor[:nb]] = -val(opt.p_flo)
            b[self._r_factor[nb:]] = val(opt.p_fhi)
        for meta, r in zip(opt._limit_meta, self._r_limits, strict=True):
            p = val(meta.param)
            b[r] = p if meta.side == "hi" else -p
        b[self.n_rows - 6 * N :] = self._soc_b
        return P, q, A, b

    def cones(self) -> list[Any]:
        import clarabel

        return [
            clarabel.ZeroConeT(self.n_zero),
            clarabel.NonnegativeConeT(self.n_nonneg),
            *[clarabel.SecondOrderConeT(3)] * (2 * self.opt.n),
        ]

    def dimensions(self) -> dict[str, int]:
        """Size of the cone program (variables, rows, nonzeros of A and P, SOCs)."""
        P, _, A, _ = self._values()
        return {
            "variables": self.n_vars,
            "constraint_rows": self.n_rows,
            "nnz_A": int(A.nnz),
            "nnz_P": int(P.nnz),
            "second_order_cones": 2 * self.opt.n,
        }

    # ------------------------------------------------------------------ solve

    def solve(self, options: dict[str, Any]) -> DirectSolution:
        """Solve with Clarabel and ``options`` (Clarabel settings by name)."""
        import clarabel

        P, q, A, b = self._values()
        t0 = time.perf_counter()
        settings = clarabel.DefaultSettings()
        settings.verbose = False
        for key, value in options.items():
            setattr(settings, key, value)
        solver = self._solver
        if solver is not None and solver.is_data_update_allowed():
            try:
                # Nonzero values in the setup's CSC order, as Python lists: Clarabel's
                # binding reads a list ~5x faster than a numpy array or a scipy matrix
                # (which it also re-checks against the setup's pattern), 85 -> 15 ms at
                # N=3,000.
                solver.update(
                    P=P.data.tolist(),
                    q=q.tolist(),
                    A=A.data.tolist(),
                    b=b.tolist(),
                    settings=settings,
                )
            except Exception:  # a refused update (pattern, dimensions) means: set up anew
                solver = None
        else:
            solver = None
        if solver is None:
            solver = clarabel.DefaultSolver(P, q, A, b, self.cones(), settings)
        sol = solver.solve()
        elapsed = time.perf_counter() - t0
        self._solver = solver
        status = _STATUS.get(str(sol.status).split(".")[-1], "solver_error")
        ok = status in ("optimal", "optimal_inaccurate")
        x = np.asarray(sol.x, dtype=float) if ok else None
        return DirectSolution(
            status=status,
            w=None if x is None else x[self.iw].copy(),
            objective=-float(sol.obj_val) if ok else None,
            iterations=int(sol.iterations),
            solver_seconds=elapsed,
        )


def _exposure_coefficients(kind: str, long_only: bool) -> tuple[float, float]:
    """Coefficients of (w, |w|) in a limit node's exposure (see limits_tree.exposure)."""
    if kind == "net" or long_only:
        return 1.0, 0.0
    if kind == "gross":
        return 0.0, 1.0
    if kind == "long":
        return 0.5, 0.5
    return -0.5, 0.5
