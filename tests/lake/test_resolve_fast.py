"""The Arrow resolution of reads whose facts have one version each equals the SQL's."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from pipelines.lake import bitemporal
from pipelines.lake.catalog import get_table
from pipelines.lake.spec import PARTITION_COLUMN, TableSpec

pytestmark = pytest.mark.unit

T0 = dt.datetime(2024, 1, 2, 22, tzinfo=dt.UTC)


def _candidates(spec: TableSpec, rng: np.random.Generator, n: int, dup: bool) -> pa.Table:
    """``n`` rows of ``spec``'s physical schema with random keys over few values (so
    effective tables get several versions per key), unique per (key, valid_date) unless
    ``dup``; some retracted."""
    schema = spec.arrow_schema()
    base = dt.date(2024, 1, 1)
    seen: set[tuple[object, ...]] = set()
    rows: list[dict[str, object]] = []
    while len(rows) < n:
        row: dict[str, object] = {}
        for f in schema:
            if f.name == "valid_date":
                row[f.name] = base + dt.timedelta(days=int(rng.integers(0, 6)))
            elif f.name == PARTITION_COLUMN:
                row[f.name] = 2024
            elif f.name == "_deleted":
                row[f.name] = bool(rng.random() < 0.15)
            elif pa.types.is_timestamp(f.type):
                row[f.name] = T0 + dt.timedelta(seconds=int(rng.integers(0, 5)))
            elif pa.types.is_string(f.type):
                row[f.name] = f"{f.name[:2]}{int(rng.integers(0, 9))}"
            elif pa.types.is_floating(f.type):
                row[f.name] = float(rng.normal())
            elif pa.types.is_integer(f.type):
                row[f.name] = int(rng.integers(0, 3))
            elif pa.types.is_boolean(f.type):
                row[f.name] = bool(rng.random() < 0.5)
            elif pa.types.is_date(f.type):
                row[f.name] = base
            else:
                row[f.name] = None
        ident = tuple(row[k] for k in (*spec.key, "valid_date"))
        if ident in seen and not dup:
            continue
        seen.add(ident)
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=schema)


@pytest.mark.parametrize(
    "table", ["orders", "execution_audit", "positions", "stage_state", "security_master"]
)
@pytest.mark.parametrize("dup", [False, True])
def test_arrow_resolution_equals_sql(table: str, dup: bool) -> None:
    spec = get_table(table)
    gen = np.random.default_rng(7)
    ranges = [
        bitemporal.ValidRange(dt.date(2024, 1, 1), dt.date(2024, 1, 6)),
        bitemporal.ValidRange(dt.date(2024, 1, 3), dt.date(2024, 1, 4)),
        bitemporal.ValidRange(dt.date(2024, 1, 9), dt.date(2024, 1, 9)),
    ]
    for n in (0, 1, 2, 7, 30):
        cands = _candidates(spec, gen, n, dup)
        for rng in ranges:
            want = bitemporal._resolve_sql(spec, cands, rng)
            got = bitemporal.resolve_as_of(spec, cands, rng)
            assert got.schema.equals(want.schema, check_metadata=True)
            assert got.equals(want), (table, n, rng)
            fast = bitemporal._resolve_unique(spec, cands, rng)
            if not dup:
                assert fast is not None  # each fact one version: no SQL needed
            if fast is not None:
                assert fast.equals(want)


@pytest.mark.parametrize("table", ["execution_audit", "positions", "security_master"])
@pytest.mark.parametrize("dup", [False, True])
def test_candidates_already_in_order_resolve_as_the_sql(
    table: str, dup: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Candidates in the answer's order (a cached scan's window) skip the sort; a repeated
    (key, valid_date) among them is still found and sent to the SQL."""
    monkeypatch.setattr(bitemporal, "_CHECK_ORDER_ROWS", 2)
    spec = get_table(table)
    point = spec.valid_time.value == "point"
    order = ["valid_date", *spec.key] if point else [*spec.key, "valid_date"]
    rng = bitemporal.ValidRange(dt.date(2024, 1, 2), dt.date(2024, 1, 5))
    for n in (2, 7, 30):
        cands = _candidates(spec, np.random.default_rng(n), n, dup)
        cands = cands.sort_by([(c, "ascending") for c in order])
        for rows in (cands, cands.take(list(range(n - 1, -1, -1)))):  # in order, reversed
            want = bitemporal._resolve_sql(spec, rows, rng)
            got = bitemporal.resolve_as_of(spec, rows, rng)
            assert got.schema.equals(want.schema, check_metadata=True)
            assert got.equals(want), (table, n)
        fast = bitemporal._resolve_unique(spec, cands, rng)
        if fast is not None:
            assert fast.equals(bitemporal._resolve_sql(spec, cands, rng))


@pytest.mark.parametrize("table", ["orders", "positions", "security_master", "fundamentals"])
def test_restated_facts_resolve_in_arrow_as_the_sql(table: str) -> None:
    """Several versions of a fact (a restatement) that the version order tells apart are
    resolved without the SQL, to the SQL's answer (the backtest's fundamentals reads went
    to DuckDB every session)."""
    spec = get_table(table)
    gen = np.random.default_rng(3)
    rng = bitemporal.ValidRange(dt.date(2024, 1, 2), dt.date(2024, 1, 5))
    for n in (2, 7, 40):
        cands = _candidates(spec, gen, n, True)
        # Versions told apart by their ingestion time (the last tie-break but one).
        ingested = [T0 + dt.timedelta(microseconds=i) for i in range(n)]
        at = cands.schema.get_field_index("_ingested_at")
        cands = cands.set_column(
            at, cands.schema.field(at), pa.array(ingested, cands.schema.field(at).type)
        )
        fast = bitemporal._resolve_unique(spec, cands, rng)
        assert fast is not None
        want = bitemporal._resolve_sql(spec, cands, rng)
        assert fast.schema.equals(want.schema, check_metadata=True)
        assert fast.equals(want), (table, n)


def test_versions_tied_on_every_order_column_go_to_the_sql() -> None:
    spec = get_table("orders")
    cands = _candidates(spec, np.random.default_rng(1), 3, False)
    twice = pa.concat_tables([cands, cands.slice(0, 1)])
    rng = bitemporal.ValidRange(dt.date(2024, 1, 1), dt.date(2024, 1, 6))
    assert bitemporal._resolve_unique(spec, twice, rng) is None
