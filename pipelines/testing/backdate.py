"""The backdate tests use to load a simulated vendor's history as it was published.

Rows are known from our receipt unless a load is backdated on purpose
(:mod:`pipelines.ingest.knowledge`); a test that builds a past session's lake from the
simulator is such a load.
"""

from __future__ import annotations

from pipelines.ingest.knowledge import Backdate

HISTORY = Backdate("test: the simulated vendor's history as published", by="pytest")
