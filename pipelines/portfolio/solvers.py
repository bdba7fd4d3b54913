"""Solver interfaces for the optimizer: cvxpy's Clarabel/SCS with O(nnz) cone formatting.

Why this module exists
----------------------
cvxpy (1.9) reorders the rows of the *parametrized* constraint tensor when a problem has
second-order / power / exponential cones (``ConicSolver.format_constraints``). It does so
by reshaping the tensor to ``m × (n_vars+1)(n_params+1)`` columns and multiplying by a
sparse permutation; scipy's sparse product allocates a work array per *column*, so memory
and time grow like ``n_vars × n_params``. With the exposure matrix ``B`` as an N×K
parameter (N=3,000, K=40 ⇒ 120k parameters, ~18k variables) that is >10 GB and the
process is killed. The reordering is a signed row permutation, so we apply it directly to
the tensor's COO indices in ``O(nnz)``; everything else is cvxpy's own code path.

The classes are registered as *custom solvers* (cvxpy requires distinct names) and report
the official solver name in our results. Clarabel is used with ``warm_start=True`` so
cvxpy keeps the Clarabel instance and calls ``update`` (no re-allocation) when only the
numbers change.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.sparse as sp
from cvxpy.constraints import SOC, ExpCone, NonNeg, PowCone3D, Zero
from cvxpy.reductions.dcp2cone.cone_matrix_stuffing import ParamConeProg
from cvxpy.reductions.solvers.conic_solvers.clarabel_conif import CLARABEL
from cvxpy.reductions.solvers.conic_solvers.conic_solver import ConicSolver
from cvxpy.reductions.solvers.conic_solvers.scs_conif import SCS


def _restructure_matrix(constraints: list[Any], exp_cone_order: list[int]) -> Any:
    """The signed row permutation cvxpy applies (same blocks as ``format_constraints``);
    None if a cone type is not handled here (then cvxpy's implementation is used)."""
    blocks: list[Any] = []
    for constr in constraints:
        total = sum(arg.size for arg in constr.args)
        kind = type(constr)
        if kind is Zero:
            blocks.append(-sp.eye_array(constr.size, format="csc"))
        elif kind is NonNeg:
            blocks.append(sp.eye_array(constr.size, format="csc"))
        elif kind is SOC:
            if constr.axis != 0:
                return None
            x_dim = constr.args[1].shape[0] if constr.args[1].shape else 1
            n_cones = constr.args[0].size
            t_sp = ConicSolver.get_spacing_matrix(
                shape=(total, n_cones), spacing=x_dim, streak=1, num_blocks=n_cones, offset=0
            )
            x_sp = ConicSolver.get_spacing_matrix(
                shape=(total, constr.args[1].size),
                spacing=1,
                streak=x_dim,
                num_blocks=n_cones,
                offset=1,
            )
            blocks.append(sp.hstack([t_sp, x_sp]))
        elif kind is ExpCone:
            blocks.append(
                sp.hstack(
                    [
                        ConicSolver.get_spacing_matrix(
                            shape=(total, arg.size),
                            spacing=len(exp_cone_order) - 1,
                            streak=1,
                            num_blocks=arg.size,
                            offset=exp_cone_order[i],
                        )
                        for i, arg in enumerate(constr.args)
                    ]
                )
            )
        elif kind is PowCone3D:
            blocks.append(
                sp.hstack(
                    [
                        ConicSolver.get_spacing_matrix(
                            shape=(total, arg.size),
                            spacing=2,
                            streak=1,
                            num_blocks=arg.size,
                            offset=i,
                        )
                        for i, arg in enumerate(constr.args)
                    ]
                )
            )
        else:
            return None
    return sp.block_diag(blocks, format="csc")


def _permute_tensor(A: Any, R: Any, n_vars: int) -> Any:
    """Apply ``R`` (m'×m) to the row blocks of the tensor ``A`` ((m·(n+1)) × (p+1)).

    Tensor row ``r + m·j`` (constraint row r, variable column j) maps to ``r' + m'·j`` for
    every nonzero ``R[r', r]`` — O(nnz(A)·nnz-per-column(R)).
    """
    m2, m = R.shape
    coo = A.tocoo()
    rows = coo.row.astype(np.int64)
    r, j = rows % m, rows // m
    Rc = sp.csc_array(R)
    Rc.sort_indices()
    starts = Rc.indptr[r]
    counts = Rc.indptr[r + 1] - starts
    rep = np.repeat(np.arange(r.size), counts)
    offs = np.arange(rep.size) - np.repeat(np.cumsum(counts) - counts, counts)
    k = starts[rep] + offs
    new_rows = Rc.indices[k].astype(np.int64) + np.int64(m2) * j[rep]
    vals = coo.data[rep] * Rc.data[k]
    shape = (int(m2) * (n_vars + 1), A.shape[1])
    return A.__class__((vals, (new_rows, coo.col[rep].astype(np.int64))), shape=shape)


def _fast_format(cls: Any, problem: Any, exp_cone_order: list[int]) -> Any:
    R = _restructure_matrix(problem.constraints, exp_cone_order)
    if R is None:
        return ConicSolver.format_constraints.__func__(cls, problem, exp_cone_order)  # type: ignore[attr-defined]
    A = _permute_tensor(problem.A, R, problem.x.size)
    return ParamConeProg(
        problem.q,
        problem.x,
        A,
        problem.variables,
        problem.var_id_to_col,
        problem.constraints,
        problem.parameters,
        problem.param_id_to_col,
        P=problem.P,
        formatted=True,
        lower_bounds=problem.lower_bounds,
        upper_bounds=problem.upper_bounds,
        lb_tensor=problem.lb_tensor,
        ub_tensor=problem.ub_tensor,
        dir_cones=problem.dir_cones,
    )


class _TimedSolve:
    """Records ``last_solve_seconds``: wall time of the solver call alone (after cvxpy's
    parameter mapping). Clarabel's own ``solve_time`` is not usable for warm re-solves: it
    keeps the first solve's setup time and adds it to every later solve."""

    last_solve_seconds: float | None = None

    def solve_via_data(self, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return super().solve_via_data(*args, **kwargs)  # type: ignore[misc]
        finally:
            self.last_solve_seconds = time.perf_counter() - t0


class FastClarabel(_TimedSolve, CLARABEL):  # type: ignore[misc]
    """Clarabel via cvxpy with O(nnz) cone formatting (reported as "CLARABEL")."""

    OFFICIAL_NAME = "CLARABEL"

    def name(self) -> str:
        return "AF_CLARABEL"

    @classmethod
    def format_constraints(cls, problem: Any, exp_cone_order: list[int]) -> Any:
        return _fast_format(cls, problem, exp_cone_order)


class FastSCS(_TimedSolve, SCS):  # type: ignore[misc]
    """SCS via cvxpy with O(nnz) cone formatting (reported as "SCS")."""

    OFFICIAL_NAME = "SCS"

    def name(self) -> str:
        return "AF_SCS"

    @classmethod
    def format_constraints(cls, problem: Any, exp_cone_order: list[int]) -> Any:
        return _fast_format(cls, problem, exp_cone_order)


_FAST: dict[str, type[Any]] = {"CLARABEL": FastClarabel, "SCS": FastSCS}

#: Chain entries that run a solver under a second name, so a policy can try the same solver
#: twice with different ``solver_options`` (e.g. fast settings first, then a robust retry).
_ALIASES: dict[str, str] = {"CLARABEL_REFINED": "CLARABEL"}


def base_solver(name: str) -> str:
    """The solver a chain entry runs (``CLARABEL_REFINED`` -> ``CLARABEL``)."""
    upper = name.upper()
    return _ALIASES.get(upper, upper)


def solver_instance(name: str) -> Any:
    """A solver argument for ``Problem.solve``: our fast interface when we have one,
    else the plain cvxpy solver name (e.g. "OSQP", which needs no cone formatting)."""
    base = base_solver(name)
    cls = _FAST.get(base)
    return cls() if cls is not None else base
