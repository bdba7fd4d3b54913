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
* ``styles``     — the style characteristics and risk-model inputs of a market snapshot.
* ``alpha``      — scores → expected returns (z-score, Grinold's rule): the one alpha function.
* ``rebalance``  — ``rebalance(RebalanceInputs)``: the one rebalance (optimize + whole shares).
* ``stage``      — ``build_risk_model(lake, day)``, ``inputs_from_lake``, ``store_targets``:
  point-in-time reads and idempotent writes of the risk model and the targets.

cvxpy is imported by ``optimizer``/``solvers`` only; import them inside tasks, not at DAG
top level.
"""
