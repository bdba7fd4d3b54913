"""The daily loop: stage functions shared by the DAGs and the backtest, and ``run_day``.

``run_day(lake, day, config, broker)`` (:mod:`pipelines.daily.loop`) runs ingest →
research → risk model → optimize → pre-trade → approval → execute → reconcile → report
for one session; the ``portfolio_rebalance`` DAG runs the same functions
(:mod:`pipelines.daily.stages`) one per task through :mod:`pipelines.daily.tasks`.

This package's ``__init__`` imports nothing heavy: DAG files import
:mod:`pipelines.daily.approval` at parse time, which must not pull in the lake or cvxpy.
"""
