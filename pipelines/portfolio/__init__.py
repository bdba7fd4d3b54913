"""Portfolio construction: factor risk model, cost model, policy, optimizer, targets.

Pure library (no lake / Airflow code). Modules:

* ``risk_model`` — Barra-style factor model ``Σ = B F Bᵀ + diag(D)`` (never N×N).
* ``costs``      — linear + 3/2-power transaction costs, borrow (holding) costs.
* ``policy``     — YAML policies (``policies/default.yaml``, ``policies/long_only.yaml``).
* ``optimizer``  — DPP cvxpy problem built once, re-solved daily; soft-constraint relaxation.
* ``solvers``    — Clarabel / SCS interfaces with O(nnz) cone formatting.
* ``results``    — solve records, relaxations, objective terms.
* ``targets``    — whole-share targets, ex-ante risk, ``target_portfolios`` rows.
* ``synthetic``  — synthetic problems for tests and benchmarks.

cvxpy is imported by ``optimizer``/``solvers`` only; import them inside tasks, not at DAG
top level.
"""
