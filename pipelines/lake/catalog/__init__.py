"""Every lake table, declared once: the catalog the lake, the CLI and every stage look up.

One module per area, in the order data flows through the platform:

* :mod:`~pipelines.lake.catalog.vendor_data` — prices, corporate actions, security master,
  fundamentals, sentiment (what the vendors deliver);
* :mod:`~pipelines.lake.catalog.ingestion` — raw manifest, quarantine, validation results,
  ingest runs (the ingestion's bookkeeping);
* :mod:`~pipelines.lake.catalog.research` — universe, features, labels, scores, models;
* :mod:`~pipelines.lake.catalog.portfolio` — risk model, targets, solve log;
* :mod:`~pipelines.lake.catalog.risk` — the kill switch's audited state;
* :mod:`~pipelines.lake.catalog.execution` — orders, fills, positions, cash, TCA, audit;
* :mod:`~pipelines.lake.catalog.daily` — the end-of-session book and the stages' working state;
* :mod:`~pipelines.lake.catalog.backtest` — backtest runs and their equity curves;
* :mod:`~pipelines.lake.catalog.audit` — the leak audit's verdicts;
* :mod:`~pipelines.lake.catalog.rollout` — the staged rollout's audit trail.

The modules hold plain :class:`~pipelines.lake.spec.TableSpec` constants (import them from
here, e.g. ``from pipelines.lake.catalog.execution import ORDERS``); this package collects
them, so every process sees the same tables whatever it imported first, and the lake
depends on no package above it. A new table is a new constant in one of these modules.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from pipelines.lake.catalog import (
    audit,
    backtest,
    daily,
    execution,
    ingestion,
    portfolio,
    research,
    risk,
    rollout,
    vendor_data,
)
from pipelines.lake.errors import UnknownTableError
from pipelines.lake.spec import TableSpec

_MODULES: tuple[ModuleType, ...] = (
    vendor_data,
    ingestion,
    research,
    portfolio,
    risk,
    execution,
    daily,
    backtest,
    audit,
    rollout,
)


def _collect(modules: tuple[ModuleType, ...]) -> dict[str, TableSpec]:
    tables: dict[str, TableSpec] = {}
    for module in modules:
        for spec in vars(module).values():
            if not isinstance(spec, TableSpec):
                continue
            if spec.name in tables and tables[spec.name] is not spec:
                raise ValueError(f"table {spec.name} declared twice (in {module.__name__})")
            tables[spec.name] = spec
    return tables


_TABLES: dict[str, TableSpec] = _collect(_MODULES)


def get_table(name: str) -> TableSpec:
    """The declaration of ``name``; raises :class:`UnknownTableError` listing the known ones."""
    try:
        return _TABLES[name]
    except KeyError:
        raise UnknownTableError(name, list(_TABLES)) from None


def all_tables() -> dict[str, TableSpec]:
    """Every declared table, by name."""
    return dict(_TABLES)


@contextmanager
def temporary_table(spec: TableSpec) -> Iterator[TableSpec]:
    """Declare ``spec`` for the duration of a ``with`` block (tests, experiments).

    The catalog is process-wide: a table a test declares must not leak into what later
    code (``all_tables()``, the maintenance DAG) believes the project declares, nor may it
    replace a declared table.
    """
    if spec.name in _TABLES:
        raise ValueError(f"table {spec.name} is already declared")
    _TABLES[spec.name] = spec
    try:
        yield spec
    finally:
        _TABLES.pop(spec.name, None)


__all__ = ["all_tables", "get_table", "temporary_table"]
