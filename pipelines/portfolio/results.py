"""Result records of a portfolio optimization (one concept: what the optimizer returns)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipelines.portfolio.errors import NoWeightsError

FloatArray = np.ndarray


@dataclass(frozen=True)
class SolveRecord:
    """One call to a solver.

    stage — "base", "relax:<group>" (soft groups opened so far), "cardinality", …;
    solve_time — wall seconds inside cvxpy (parameter update + solver + unpack);
    solver_time — wall seconds of the solver call alone, without cvxpy's parameter mapping
                  (None if unavailable);
    iterations — the solver's iteration count (None if unavailable);
    path — "direct" (the cone program handed to Clarabel by :mod:`pipelines.portfolio.direct`)
           or "cvxpy".
    """

    stage: str
    solver: str | None
    status: str
    solve_time: float
    solver_time: float | None
    objective: float | None
    relaxed_groups: tuple[str, ...] = ()
    message: str = ""
    iterations: int | None = None
    path: str = "cvxpy"


@dataclass(frozen=True)
class Relaxation:
    """A soft constraint widened by ``amount`` (same units as ``limit``)."""

    group: str
    constraint: str
    limit: float
    amount: float


@dataclass(frozen=True)
class ObjectiveTerms:
    """Objective terms at the solution (daily return units, fractions of NAV).

    objective = alpha − risk − transaction_cost − holding_cost − penalty, where
    risk = λ·(factor_var + specific_var), transaction_cost and holding_cost already
    multiplied by their aversions, penalty = relaxation penalty on slacks.
    """

    alpha: float
    risk: float
    factor_var: float
    specific_var: float
    transaction_cost: float
    holding_cost: float
    penalty: float

    @property
    def objective(self) -> float:
        return self.alpha - self.risk - self.transaction_cost - self.holding_cost - self.penalty


@dataclass(frozen=True)
class OptimizationResult:
    """Outcome of ``PortfolioOptimizer.solve``.

    status — "optimal" (all constraints as declared), "relaxed" (optimal after widening
    soft constraints, see ``relaxations``), "infeasible" (hard constraints cannot be met;
    ``weights`` is None) or "error" (no solver produced a usable answer).
    """

    date: pd.Timestamp
    policy: str
    security_ids: tuple[str, ...]
    status: str
    weights: FloatArray | None
    current_weights: FloatArray
    alpha: FloatArray
    solves: tuple[SolveRecord, ...]
    relaxations: tuple[Relaxation, ...] = ()
    terms: ObjectiveTerms | None = None
    solver: str | None = None
    message: str = ""
    diagnostics: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in ("optimal", "relaxed") and self.weights is not None

    @property
    def solve_time(self) -> float:
        return float(sum(s.solve_time for s in self.solves))

    @property
    def trades(self) -> FloatArray:
        if self.weights is None:
            raise NoWeightsError(f"no weights: status {self.status}: {self.message}")
        return self.weights - self.current_weights

    def weights_series(self) -> pd.Series:
        if self.weights is None:
            raise NoWeightsError(f"no weights: status {self.status}: {self.message}")
        return pd.Series(self.weights, index=list(self.security_ids), name="weight")

    def solves_frame(self, portfolio_id: str) -> pd.DataFrame:
        """One row per solver call: date, portfolio_id, stage, solver, status, solve_time,
        solver_time, objective, relaxed_groups, message."""
        return pd.DataFrame(
            [
                {
                    "date": self.date,
                    "portfolio_id": portfolio_id,
                    "stage": s.stage,
                    "solver": s.solver,
                    "status": s.status,
                    "solve_time": s.solve_time,
                    "solver_time": s.solver_time,
                    "objective": s.objective,
                    "relaxed_groups": ",".join(s.relaxed_groups),
                    "message": s.message,
                }
                for s in self.solves
            ]
        )
