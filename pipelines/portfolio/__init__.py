"""Portfolio construction: factor risk model, cost model, policy, optimizer, targets.

Library modules (no Airflow; only ``stage`` touches the lake):

* ``risk_model`` — Barra-style factor model ``Σ = B F Bᵀ + diag(D)`` (never N×N).
* ``costs``      — linear + 3/2-power transaction costs, borrow (holding) costs.
* ``policy``     — YAML policies (``policies/default.yaml``, ``policies/long_only.yaml``).
* ``optimizer``  — DPP cvxpy problem built once, re-solved daily; soft-constraint relaxation.
* ``solvers``    — Clarabel / SCS interfaces with O(nnz) cone formatting.
* ``results``    — solve records, relaxations, objective terms.
* ``targets``    — whole-share targets, ex-ante risk, ``target_portfolios`` rows.
* ``tables``     — lake tables: risk model, ``target_portfolios``, ``target_risk``, ``solve_log``.
* ``stage``      — ``build_risk_model(lake, day)`` / ``rebalance(lake, day, …)``: the stage
  functions the daily DAG and a backtest call (point-in-time reads, idempotent writes).

cvxpy is imported by ``optimizer``/``solvers`` only; import them inside tasks, not at DAG
top level.
"""
