"""Research stages over features and models: universe, features, labels, scores, retrain.

Built on the point-in-time layer (:mod:`pipelines.pit`), the feature registry
(:mod:`pipelines.features`) and the models (:mod:`models`). :mod:`.stages` holds the
stage functions the DAGs and the CLI call (``compute_features``, ``score_day``,
``retrain``, ``diagnose`` …), whose outputs are the tables declared in :mod:`.tables`;
:mod:`.diagnostics` and :mod:`.report` are pure library code over scores and labels.
Nothing below research imports it.
"""
