"""The table catalog: every declaration in one place, seen whole by any process."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pyarrow as pa
import pytest

import pipelines.lake.catalog as catalog
from pipelines.errors import AlphaFactoryError
from pipelines.lake import TableSpec, UnknownTableError, all_tables, get_table
from pipelines.lake.catalog import temporary_table

pytestmark = pytest.mark.unit


def test_every_declared_constant_is_in_the_catalog() -> None:
    declared = {}
    for info in pkgutil.iter_modules(catalog.__path__, f"{catalog.__name__}."):
        module = __import__(info.name, fromlist=["_"])
        for value in vars(module).values():
            if isinstance(value, TableSpec):
                declared[value.name] = value
    assert declared == all_tables()
    assert all(get_table(name) is spec for name, spec in declared.items())


def test_a_fresh_process_importing_only_the_lake_sees_every_table() -> None:
    # The lake depends on nothing above it: looking tables up loads no stage package.
    code = (
        "import json, sys\n"
        "from pipelines.lake import all_tables\n"
        "above = sorted(m for m in sys.modules if m.startswith(('pipelines.', 'models'))"
        " and not m.startswith(('pipelines.lake', 'pipelines.errors', 'pipelines.sql_files',"
        " 'pipelines.timeline', 'pipelines.config')))\n"
        "print(json.dumps({'tables': sorted(all_tables()), 'above': above}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    seen = json.loads(out)
    assert seen["tables"] == sorted(all_tables())
    assert seen["above"] == []


def test_unknown_table_lists_the_declared_ones() -> None:
    with pytest.raises(UnknownTableError, match=r"declared tables: .*prices"):
        get_table("no_such_table")
    # A lake error is one of the platform's deliberate errors (the CLI prints it as one line).
    assert issubclass(UnknownTableError, AlphaFactoryError)


def test_temporary_table_is_gone_after_the_block_and_cannot_replace_a_declared_one() -> None:
    spec = TableSpec(
        name="test_temporary",
        description="test table",
        key=("security_id",),
        fields=(pa.field("security_id", pa.string(), False),),
    )
    with temporary_table(spec):
        assert get_table("test_temporary") is spec
    assert "test_temporary" not in all_tables()
    with pytest.raises(ValueError, match="already declared"), temporary_table(get_table("prices")):
        pass
    assert "prices" in all_tables()
