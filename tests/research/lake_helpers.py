"""Small research configs for tests on simulated lakes.

The lakes themselves come from the one factory, :func:`pipelines.testing.lakes.simulated_lake`
(the ``make_simulated_lake`` fixture of ``tests/conftest.py``).
"""

from __future__ import annotations

from pipelines.research.stages import ResearchConfig

#: A cheap LightGBM and a short walk-forward: tests check behaviour, not model quality.
# one thread: on a shared 2-core machine OpenMP spinning makes 2 threads far slower
SMALL_PARAMS = {"num_leaves": 7, "min_data_in_leaf": 40, "learning_rate": 0.1, "num_threads": 1}
SMALL_CONFIG = ResearchConfig(
    train_sessions=200,
    min_train_sessions=100,
    valid_sessions=40,
    num_boost_round=60,
    early_stopping_rounds=10,
    params=SMALL_PARAMS,
)
