"""Research stage: point-in-time panel, labels, splits, diagnostics, report, lake stages.

The panel contract, labels, splits, dataset, diagnostics and report are pure library code
over a :class:`~pipelines.research.panel.Panel`. :mod:`.lake_panel` builds that panel from
the bitemporal lake, and :mod:`.stages` holds the stage functions the DAGs and the
backtest call (``compute_features``, ``score_day``, ``retrain``, ``diagnose`` …), whose
outputs are the tables declared in :mod:`.tables`.
"""
