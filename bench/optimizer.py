"""Optimizer benchmark: first solve (with compile), warm re-solves, rebuild-from-scratch.

Usage::

    .venv/bin/python bench/optimizer.py            # N = 500 and 3,000, K = 40
    .venv/bin/python bench/optimizer.py --quick    # N = 500 only, fewer days
    .venv/bin/python bench/optimizer.py --repeat 5 # N = 3,000 measured 5 times in a row
    .venv/bin/python bench/optimizer.py --extra    # + the power-cone impact variant (slow)
    .venv/bin/python bench/optimizer.py --sweep    # + 36 policy regimes x 3 days (robustness)
    .venv/bin/python bench/optimizer.py --clarabel '{"tol_feas": 1e-7}' --out /tmp/x.json
                                                   # candidate settings, results elsewhere

Writes ``bench/results/optimizer.json``. Each simulated day draws new alpha, ADV, spreads,
perturbed style exposures and a rescaled factor covariance; the current weights are the
previous day's solution (so turnover, participation and cost terms are realistic).
Every warm solve is compared with the reference solve of the same inputs: the compiled cvxpy
problem (``direct_solve: false``) at full precision (Clarabel, gap and feasibility
tolerances 1e-10, iterative refinement on), as the optimizer solved before the direct cone program
(pipelines/portfolio/direct.py); ``max_abs_w_diff`` is max_i |w_i - w_ref_i|.
The policy is ``default.yaml`` with bounds on *every* style factor (full constraint set:
position/ADV/participation bounds, restricted list, gross, net band, 11 sector bounds,
28 style bounds, beta band, turnover cap, linear + 3/2-power costs, borrow costs).
"""

from __future__ import annotations

import os

# One BLAS thread (unless the caller set it): the optimizer's BLAS/LAPACK work is on K×K
# (K = 40) and N×K matrices, where OpenBLAS's worker threads only add wake-up and spinning
# on the 2 shared cores: numpy.linalg.eigh of the 40×40 factor covariance measured
# 15-115 ms wall (8-23 ms CPU) threaded, 0.2-0.5 ms single-threaded. Must precede numpy.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import itertools
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.portfolio.optimizer import (
    PortfolioOptimizer,
    structural_exposures,
)
from pipelines.portfolio.policy import load_policy
from pipelines.testing.optimization import (
    full_constraint_policy,
    perturbed_day_inputs,
    synthetic_risk_model,
)

RESULTS = Path(__file__).resolve().parent / "results" / "optimizer.json"

CONSTRAINTS = (
    "position bounds |w_i| <= max_position (hard)",
    "position <= max_position_adv * ADV_i (hard)",
    "trade <= participation * ADV_i (hard)",
    "restricted list: 5 names forced to 0 (hard)",
    "gross leverage sum|w| <= 2 (hard)",
    "net exposure band [-1%, +1%] (soft)",
    "11 sector exposure bounds (soft)",
    "28 style factor exposure bounds (soft)",
    "beta band [-0.05, 0.05] (soft)",
    "turnover cap sum|w - w0| <= 0.30 (soft)",
    "objective: alpha - risk(factor form, y = B'w) - linear cost - 3/2-power impact - borrow",
)


TARGET_S = 0.3
WEIGHT_TOL = 1e-5
# The reference solve: the compiled cvxpy problem at full precision.
REFERENCE_OPTIONS = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class _Reference:
    """Reference weights per (kind, N, day, w0), solved once and reused by every repeat.

    kind "cvxpy": the compiled cvxpy problem at full precision (the solve before the direct
    program; Clarabel ends it ``AlmostSolved`` on most days, i.e. it is itself accurate to
    a few 1e-6 only); kind "direct": the direct program at full precision (the fast solve's
    own error)."""

    def __init__(self) -> None:
        self._opts: dict[tuple[str, int], PortfolioOptimizer] = {}
        self._cache: dict[tuple[str, int, int, bytes], np.ndarray | None] = {}
        self.statuses: dict[tuple[str, int, int], str] = {}
        self.problem: dict[int, dict[str, int]] = {}

    def weights(
        self, rm: Any, day: int, w0: np.ndarray | None, kind: str = "cvxpy"
    ) -> np.ndarray | None:
        n = rm.n_assets
        key = (kind, n, day, b"" if w0 is None else np.ascontiguousarray(w0).tobytes())
        if key not in self._cache:
            opt = self._opts.get((kind, n))
            if opt is None:
                policy = full_constraint_policy(
                    rm.factor_names,
                    direct_solve=kind == "direct",
                    solvers=["CLARABEL"],
                    solver_options={"CLARABEL": REFERENCE_OPTIONS},
                )
                opt = PortfolioOptimizer(
                    policy, n, rm.factor_names, fixed_exposures=structural_exposures(rm)
                )
                self._opts[(kind, n)] = opt
            res = opt.solve(perturbed_day_inputs(rm, day, w0))
            self.statuses[(kind, n, day)] = (
                f"{res.status}/{res.solves[-1].status}/{res.solves[-1].iterations}"
            )
            if kind == "cvxpy" and n not in self.problem:
                data = opt.problem.get_problem_data(opt._solvers["CLARABEL"])[0]
                self.problem[n] = {
                    "variables": int(data["A"].shape[1]),
                    "constraint_rows": int(data["A"].shape[0]),
                    "nnz_A": int(data["A"].nnz),
                    "nnz_P": int(data["P"].nnz) if data.get("P") is not None else 0,
                    "second_order_cones": len(data["dims"].soc),
                }
            self._cache[key] = res.weights
        return self._cache[key]


def _policy(factor_names: tuple[str, ...], clarabel: dict[str, Any], **update: Any) -> Any:
    """The bench's policy; ``clarabel`` overrides the chain's first CLARABEL options."""
    policy = full_constraint_policy(factor_names, **update)
    if not clarabel:
        return policy
    options = {k: dict(v) for k, v in policy.solver_options.items()}
    options["CLARABEL"] = {**options.get("CLARABEL", {}), **clarabel}
    return policy.model_copy(update={"solver_options": options})


def run_size(
    n: int,
    k: int,
    days: int,
    rebuild_days: int,
    extra: bool,
    reference: _Reference | None = None,
    clarabel: dict[str, Any] | None = None,
) -> dict[str, Any]:
    rm = synthetic_risk_model(n, k, seed=n)
    policy = _policy(rm.factor_names, clarabel or {})
    out: dict[str, Any] = {"n_assets": n, "n_factors": k, "load_average_start": _load()}

    t0 = time.perf_counter()
    structure = structural_exposures(rm)
    opt = PortfolioOptimizer(policy, n, rm.factor_names, fixed_exposures=structure)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = opt.solve(perturbed_day_inputs(rm, 0, None))
    t_first = time.perf_counter() - t0
    if opt._direct is not None:
        out["solver_problem"] = opt._direct.dimensions()
    if reference is not None:
        reference.weights(rm, 0, None)
        out["solver_problem_cvxpy"] = reference.problem.get(n)
    out["build_s"] = t_build
    out["first_solve_s"] = t_first
    out["first_status"] = res.status
    w = res.weights

    warm: list[float] = []
    warm_cpu: list[float] = []
    solver_t: list[float] = []
    iters: list[int] = []
    statuses: list[str] = []
    solvers: list[str | None] = []
    paths: list[str] = []
    diffs: list[float] = []
    diffs_direct: list[float] = []
    ref_status: list[str] = []
    for day in range(1, days + 1):
        inp = perturbed_day_inputs(rm, day, w)
        t0, c0 = time.perf_counter(), time.process_time()
        res = opt.solve(inp)
        warm.append(time.perf_counter() - t0)
        warm_cpu.append(time.process_time() - c0)
        statuses.append(res.status)
        solvers.append(res.solver)
        last = res.solves[-1]
        paths.append("+".join(s.path for s in res.solves))
        solver_t.append(float(last.solver_time or float("nan")))
        iters.append(int(sum(s.iterations or 0 for s in res.solves)))
        if reference is not None:
            for kind, sink in (("cvxpy", diffs), ("direct", diffs_direct)):
                ref = reference.weights(rm, day, w, kind)
                sink.append(
                    float(np.abs(res.weights - ref).max())
                    if res.weights is not None and ref is not None
                    else float("inf")
                )
            ref_status.append(reference.statuses[("cvxpy", n, day)])
        if res.weights is not None:
            w = res.weights
    out["warm_resolve_s"] = warm
    out["warm_resolve_median_s"] = statistics.median(warm)
    out["warm_resolve_cpu_s"] = warm_cpu
    out["warm_resolve_cpu_median_s"] = statistics.median(warm_cpu)
    out["warm_solver_time_s"] = solver_t
    out["warm_solver_time_median_s"] = statistics.median(solver_t)
    out["warm_overhead_median_s"] = statistics.median(
        [a - b for a, b in zip(warm, solver_t, strict=True)]
    )
    out["warm_iterations"] = iters
    out["warm_statuses"] = statuses
    out["warm_solvers"] = solvers
    out["warm_paths"] = paths
    if reference is not None:
        out["warm_max_abs_w_diff"] = diffs
        out["reference_statuses"] = ref_status
        out["warm_max_abs_w_diff_vs_direct_full_precision"] = diffs_direct
        out["max_abs_w_diff"] = max(diffs) if diffs else None
        out["weights_within_tol"] = bool(diffs) and max(diffs) <= WEIGHT_TOL
    out["last_diagnostics"] = res.diagnostics

    rebuild: list[float] = []
    for day in range(1, rebuild_days + 1):
        inp = perturbed_day_inputs(rm, day, w)
        t0 = time.perf_counter()
        fresh = PortfolioOptimizer(policy, n, rm.factor_names, fixed_exposures=structure)
        fresh.solve(inp)
        rebuild.append(time.perf_counter() - t0)
    if rebuild:
        out["rebuild_each_day_s"] = rebuild
        out["rebuild_median_s"] = statistics.median(rebuild)
        out["warm_over_rebuild_ratio"] = out["warm_resolve_median_s"] / out["rebuild_median_s"]

    if extra:
        # Same problem with one 3D power cone per name for |z|^{3/2} instead of SOCs.
        pc = PortfolioOptimizer(
            full_constraint_policy(rm.factor_names, impact_power_cone=True),
            n,
            rm.factor_names,
            fixed_exposures=structure,
        )
        pc.solve(perturbed_day_inputs(rm, 0, None))
        times, st = [], []
        wpc = w
        for day in range(1, 4):
            t0 = time.perf_counter()
            r = pc.solve(perturbed_day_inputs(rm, day, wpc))
            times.append(time.perf_counter() - t0)
            st.append(f"{r.status}/{r.solver}")
            wpc = r.weights if r.weights is not None else wpc
        out["variant_power_cone"] = {"warm_resolve_s": times, "statuses": st}
    out["load_average_end"] = _load()
    return out


def robustness_sweep(
    n: int, k: int, days: int = 3, clarabel: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Every (risk aversion, impact coefficient, turnover cap) regime of a small grid, each
    over ``days`` consecutive days: does the first solver of the chain answer, optimally
    (audit passed), and within ``WEIGHT_TOL`` of the reference? The reference here is the
    direct program at full precision (``REFERENCE_OPTIONS``) on the same inputs: the cvxpy
    compile of 36 regimes at N=3,000 would take longer than the sweep itself, and the
    direct program is the cvxpy problem (tests/portfolio/test_direct.py)."""
    rm = synthetic_risk_model(n, k, seed=n)
    structure = structural_exposures(rm)
    rows: list[dict[str, Any]] = []
    grid = itertools.product([1.0, 10.0, 100.0], [0.0, 0.1, 1.0, 10.0], [None, 0.05, 0.3])
    for risk_aversion, impact, turnover in grid:
        regime = {
            "risk_aversion": risk_aversion,
            "impact_coefficient": impact,
            "turnover_cap": turnover,
        }
        policy = _policy(rm.factor_names, clarabel or {}, **regime)
        opt = PortfolioOptimizer(policy, n, rm.factor_names, fixed_exposures=structure)
        ref_opt = PortfolioOptimizer(
            full_constraint_policy(
                rm.factor_names,
                solvers=["CLARABEL"],
                solver_options={"CLARABEL": REFERENCE_OPTIONS},
                **regime,
            ),
            n,
            rm.factor_names,
            fixed_exposures=structure,
        )
        w = None
        for day in range(days):
            inputs = perturbed_day_inputs(rm, day, w)
            t0, c0 = time.perf_counter(), time.process_time()
            res = opt.solve(inputs)
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
            ref = ref_opt.solve(inputs)
            diff = (
                float(np.abs(res.weights - ref.weights).max())
                if res.weights is not None and ref.weights is not None
                else float("inf")
            )
            rows.append(
                {
                    "risk_aversion": risk_aversion,
                    "impact_coefficient": impact,
                    "turnover_cap": turnover,
                    "day": day,
                    "status": res.status,
                    "solver": res.solver,
                    "solver_calls": len(res.solves),
                    "first_status": res.solves[0].status,
                    "iterations": res.solves[0].iterations,
                    "seconds": elapsed,
                    "cpu_seconds": cpu,
                    "max_abs_w_diff": diff,
                }
            )
            w = res.weights if res.weights is not None else w
    first_try = [r for r in rows if r["status"] == "optimal" and r["solver_calls"] == 1]
    return {
        "n_assets": n,
        "n_factors": k,
        "solver_options": clarabel or {},
        "solves": len(rows),
        "optimal_first_solver": len(first_try),
        "max_abs_w_diff": max(r["max_abs_w_diff"] for r in rows),
        "within_tol": sum(r["max_abs_w_diff"] <= WEIGHT_TOL for r in rows),
        "not_optimal": [r for r in rows if r["status"] != "optimal"],
        "needed_fallback": [r for r in rows if r["status"] == "optimal" and r["solver_calls"] > 1],
        "rows": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="N=500 only, fewer days")
    ap.add_argument("--factors", type=int, default=40)
    ap.add_argument("--extra", action="store_true", help="also time the power-cone variant")
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="measure the N=3,000 warm re-solves this many times in a row (each a fresh "
        "optimizer, first solve and 9 warm days) and report every median against the target",
    )
    ap.add_argument(
        "--sweep",
        action="store_true",
        help="also solve 36 policy regimes x 3 days at N=3,000 (robustness, ~1-2 min)",
    )
    ap.add_argument(
        "--clarabel",
        type=json.loads,
        default={},
        help="JSON object overriding the chain's first CLARABEL options (candidate settings)",
    )
    ap.add_argument("--out", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    ap.add_argument("--sweep-only", action="store_true", help="only the robustness sweep")
    args = ap.parse_args()
    sizes = [(500, 8, 2, False)] if args.quick else [(500, 10, 3, False), (3000, 9, 2, args.extra)]
    results: dict[str, Any] = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "load_average_start": _load(),
        # Other sessions share the 2 cores; a negative niceness (root) approximates the
        # quiet machine the target is stated for. Recorded so the numbers can be judged.
        "niceness": os.nice(0),
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "quick": args.quick,
        "solver_chain": load_policy("default").solvers,
        "solver_options": load_policy("default").solver_options,
        "solver_options_override": args.clarabel,
        "direct_solve": load_policy("default").direct_solve,
        "reference": {
            "what": (
                "compiled cvxpy problem (direct_solve false), Clarabel at full precision; "
                "reference_statuses = result/solver status/iterations of each reference "
                "solve (optimal_inaccurate = Clarabel AlmostSolved: the reference itself is "
                "accurate to the reduced tolerances only). warm_max_abs_w_diff_vs_direct_"
                "full_precision: the same against the direct program at full precision"
            ),
            "solver_options": REFERENCE_OPTIONS,
        },
        "constraints": list(CONSTRAINTS),
        "target": (
            f"warm re-solve at N=3000: median <= {TARGET_S} s in every run of --repeat, "
            f"weights within {WEIGHT_TOL:g} of the reference solve"
        ),
        "notes": (
            "warm = re-solve with new parameter values: the first solver of the chain runs "
            "the direct cone program (pipelines/portfolio/direct.py: value arrays rebuilt, "
            "Clarabel data update, solve); the cvxpy problem is compiled only if a fallback "
            "or a relaxation needs it. rebuild = construct a new optimizer and solve. Times "
            "in seconds, wall clock (cpu = process time of the warm re-solve, less sensitive "
            "to other load on the 2 shared cores; load averages are recorded per run). "
            "warm_iterations = Clarabel iterations of each solve; warm_max_abs_w_diff = "
            "max |w - w_ref| per solve."
        ),
        "sizes": [],
    }
    reference = _Reference()
    repeats: list[dict[str, Any]] = []
    for n, days, rebuild_days, extra in [] if args.sweep_only else sizes:
        runs = args.repeat if n == 3000 else 1
        for i in range(runs):
            print(f"N={n} K={args.factors} run {i + 1}/{runs} load {_load()} ...", flush=True)
            r = run_size(
                n,
                args.factors,
                days,
                rebuild_days if i == 0 else 0,
                extra and i == 0,
                reference,
                args.clarabel,
            )
            print(
                f"  first={r['first_solve_s']:.2f}s "
                f"warm median={r['warm_resolve_median_s']:.3f}s "
                f"cpu median={r['warm_resolve_cpu_median_s']:.3f}s "
                f"(solver {r['warm_solver_time_median_s']:.3f}s, iters {r['warm_iterations']}) "
                f"max|w-w_ref|={r.get('max_abs_w_diff', float('nan')):.2e}",
                flush=True,
            )
            if i == 0:
                results["sizes"].append(r)
            if n == 3000:
                repeats.append(r)
    if repeats:
        medians = [r["warm_resolve_median_s"] for r in repeats]
        results["repeat"] = {
            "n_assets": 3000,
            "runs": len(repeats),
            "warm_resolve_median_s": medians,
            "warm_resolve_cpu_median_s": [r["warm_resolve_cpu_median_s"] for r in repeats],
            "warm_iterations": [r["warm_iterations"] for r in repeats],
            "max_abs_w_diff": [r.get("max_abs_w_diff") for r in repeats],
            "load_average_start": [r["load_average_start"] for r in repeats],
            "load_average_end": [r["load_average_end"] for r in repeats],
            "each_median_le_target": [m <= TARGET_S for m in medians],
            "all_medians_le_target": all(m <= TARGET_S for m in medians),
            "runs_detail": [
                {k: r[k] for k in ("warm_resolve_s", "warm_resolve_cpu_s", "warm_solver_time_s")}
                for r in repeats[1:]
            ],
        }
        print(
            f"repeat: medians {[round(m, 3) for m in medians]} "
            f"all <= {TARGET_S}: {results['repeat']['all_medians_le_target']}",
            flush=True,
        )
    if args.sweep or args.sweep_only:
        print("robustness sweep ...", flush=True)
        sweep = robustness_sweep(500 if args.quick else 3000, args.factors, clarabel=args.clarabel)
        print(
            f"  {sweep['optimal_first_solver']}/{sweep['solves']} optimal from the first solver; "
            f"{len(sweep['not_optimal'])} not optimal; {sweep['within_tol']}/{sweep['solves']} "
            f"within {WEIGHT_TOL:g} (max {sweep['max_abs_w_diff']:.2e})",
            flush=True,
        )
        results["robustness_sweep"] = sweep
    results["load_average_end"] = _load()
    if repeats:
        results["target_met"] = bool(
            results["repeat"]["all_medians_le_target"]
            and all(r.get("weights_within_tol") for r in repeats)
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
