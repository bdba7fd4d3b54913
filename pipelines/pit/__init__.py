"""The point-in-time data layer: what features and models are built on.

* :mod:`.panel` — the :class:`~pipelines.pit.panel.Panel` contract (wide fields, rows =
  sessions, every value knowable at its row's decision cutoff).
* :mod:`.lake_panel` — that panel built from the bitemporal lake (one DuckDB query).
* :mod:`.history` — research history as known at each session: first prints plus the
  few price corrections and late prints, recomputed only where they reach.
* :mod:`.ops` and :mod:`.normalize` — trailing-window and per-date cross-sectional
  primitives over (T, N) arrays (a row's output depends on rows ``<= t`` only).
* :mod:`.labels` — forward-return labels and the date each becomes usable.
* :mod:`.splits` — purged, embargoed walk-forward splits.
* :mod:`.dataset` — the model-ready (T, N, F) dataset with segments.
* :mod:`.perturb` — perturb-the-future checks (scramble rows after a date, compare).

Nothing here imports features, models, research or anything above them.
"""
