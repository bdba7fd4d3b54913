"""Staged rollout: a model, policy or scorer moves paper → canary → full behind promotion
gates judged every session, with automatic rollback; every step audited in
``rollout_events`` (see :mod:`pipelines.rollout.session`)."""
