"""Which features can be computed on the data at hand, and why the others are skipped.

A feature declares its panel ``inputs`` (:class:`~pipelines.features.spec.FeatureSpec`);
each panel field is built from known lake tables
(:data:`pipelines.pit.lake_panel.FIELD_TABLES`), so a feature *needs* the union of its
inputs' tables (:func:`feature_tables`). A vendor that delivers only prices, the
security master and corporate actions gives no fundamentals and no sentiment: every
feature reading ``market_cap``, ``book_equity`` or ``sentiment`` would be NaN everywhere.
Such a feature is **skipped**, not failed: :func:`partition` keeps the computable ones and
returns a :class:`FeatureSkip` (name + one-line reason) for each other, logging that line.

Two reasons, checked in order:

1. an input table holds no row known at the decision time (:func:`table_reason`);
2. an input field has no value anywhere in the panel rows the feature reads
   (:func:`null_reason`) — e.g. the table has rows, but none for these sessions.

Both look only at data known at the decision time (the point-in-time panel, tables as
known then), so a skip decision never depends on a later fact.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import pandas as pd

from pipelines.features.spec import FeatureSpec
from pipelines.pit.lake_panel import FIELD_TABLES, INPUT_TABLES
from pipelines.pit.panel import Panel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureSkip:
    """A feature left out of a computation, and why (one line, for logs and reports)."""

    feature: str
    reason: str

    def __str__(self) -> str:
        return f"feature {self.feature} skipped: {self.reason}"


def feature_tables(spec: FeatureSpec) -> tuple[str, ...]:
    """The lake tables ``spec`` needs (union over its inputs), in the panel's input order.

    An input the lake panel does not build (a field of a test's synthetic panel) needs no
    table: only the panel check of :func:`null_reason` applies to it.
    """
    needed = {table for name in spec.inputs for table in FIELD_TABLES.get(name, ())}
    return tuple(t for t in INPUT_TABLES if t in needed)


def table_reason(spec: FeatureSpec, empty_tables: Collection[str]) -> str | None:
    """Why ``spec`` cannot be computed when ``empty_tables`` hold nothing; None if it can."""
    missing = [t for t in feature_tables(spec) if t in empty_tables]
    if not missing:
        return None
    fields = [f for f in spec.inputs if set(FIELD_TABLES.get(f, ())) & set(missing)]
    noun = "tables" if len(missing) > 1 else "table"
    return f"input {noun} {', '.join(missing)} empty (needed for {', '.join(fields)})"


def has_value(panel: Panel, name: str) -> bool:
    """Whether field ``name`` of ``panel`` holds any non-null cell."""
    values = panel.field(name).to_numpy()
    # A null test of Python objects costs ~0.1 us a cell (a training panel's sector field
    # is ~500k of them), and a field with values nearly always has some in its last row.
    if values.dtype == object and len(values) and pd.notna(values[-1]).any():
        return True
    return bool(pd.notna(values).any())


def null_reason(spec: FeatureSpec, panel: Panel) -> str | None:
    """Why ``spec`` cannot be computed on ``panel`` (an input without any value); None if it can.

    ``panel`` is exactly the rows the computation reads (for one session: its lookback
    window). An input missing from the panel is left to the computation to report.
    """
    empty = [name for name in spec.inputs if name in panel.fields and not has_value(panel, name)]
    if not empty:
        return None
    span = f"{panel.dates[0].date()}..{panel.dates[-1].date()}" if len(panel.dates) else "(no rows)"
    noun = "inputs" if len(empty) > 1 else "input"
    return f"{noun} {', '.join(empty)} all null in the panel window {span}"


def partition(
    specs: Mapping[str, FeatureSpec],
    empty_tables: Collection[str] = (),
    panel: Panel | None = None,
    at: int | None = None,
) -> tuple[dict[str, FeatureSpec], list[FeatureSkip]]:
    """Split ``specs`` into the computable ones (same order) and the skipped ones.

    ``empty_tables`` come from :func:`pipelines.pit.lake_panel.empty_input_tables`. With
    ``panel``, each remaining feature is also checked on the rows it reads: the whole
    panel, or with ``at`` (a row position) its lookback window ``[at − lookback, at]``.
    Each skip is logged as one WARNING line (its :class:`FeatureSkip` string).
    """
    kept: dict[str, FeatureSpec] = {}
    skipped: list[FeatureSkip] = []
    for name, spec in specs.items():
        reason = table_reason(spec, empty_tables)
        if reason is None and panel is not None:
            rows = panel if at is None else panel.iloc(at - spec.lookback, at + 1)
            reason = null_reason(spec, rows)
        if reason is None:
            kept[name] = spec
        else:
            skip = FeatureSkip(name, reason)
            log.warning("%s", skip)
            skipped.append(skip)
    return kept, skipped
