"""Vendor values as written: only an empty CSV field is null (the ticker ``NA`` is ``NA``),
and a mapping expression failing on a value is a mapping issue, not a crash (issue 13)."""

from __future__ import annotations

import pytest

from pipelines.ingest.feed_spec import FeedSpec, SqlExpr
from pipelines.ingest.parse import parse_file

pytestmark = pytest.mark.unit


def test_na_and_friends_are_values_and_only_empty_is_null() -> None:
    feed = FeedSpec(
        name="acme_prices",
        table="prices",
        contract="prices",
        protocol="sftp",
        connection_id="sftp_acme",
        remote_dir="/outgoing/{date:%Y%m%d}",
        file="EOD_{date:%Y%m%d}.csv",
        manifest="MANIFEST.json",
        compression="none",
        delimiter=";",
        encoding="latin-1",
        date_format="%d/%m/%Y",
        columns={
            "security_id": "FIGI",
            "ticker": "Mnémo",
            "valid_date": "Date",
            "close": "Clôture",
        },
    )
    data = "FIGI;Mnémo;Date;Clôture\nBBG000A;NA;05/07/2024;1\nBBG000B;N/A;05/07/2024;2\nBBG000C;;05/07/2024;3\n"
    batch = parse_file(feed, "EOD_20240705.csv", data.encode("latin-1"))
    assert not batch.issues
    assert batch.table.column("ticker").to_pylist() == ["NA", "N/A", None]


def test_an_expression_failing_on_a_value_leaves_its_column_out_with_an_issue() -> None:
    """CAST('oops' AS DOUBLE) binds, then fails on the value: the file is not unreadable,
    the column is missing (the contract quarantines the file: schema.close.present)."""
    feed = FeedSpec(
        name="acme_prices",
        table="prices",
        contract="prices",
        protocol="sftp",
        connection_id="sftp_acme",
        remote_dir="/outgoing",
        file="EOD.csv",
        manifest="MANIFEST.json",
        compression="none",
        columns={"security_id": "ID", "valid_date": "D", "close": SqlExpr(sql="CAST(C AS DOUBLE)")},
    )
    batch = parse_file(feed, "EOD.csv", b"ID,D,C\na,2024-07-05,1.5\nb,2024-07-05,oops\n")
    assert [(i.column, i.rule) for i in batch.issues] == [("close", "mapping.expression")]
    assert "oops" in batch.issues[0].message
    assert "close" not in batch.table.column_names
    assert batch.table.column("security_id").to_pylist() == ["a", "b"]
