"""A ticker that reads ``NA`` is a value (issue 15): Arrow's CSV reader treats "NA", "null",
"N/A" and a dozen other words as missing by default, so the security master lost the
ticker of a real company; only the feed's declared null words are gaps."""

from __future__ import annotations

import pytest

from pipelines.ingest.feed_spec import FeedSpec
from pipelines.ingest.parse import parse_file

pytestmark = pytest.mark.unit


def _feed(**extra: object) -> FeedSpec:
    return FeedSpec(
        name="acme_prices",
        table="prices",
        contract="prices",
        protocol="sftp",
        connection_id="sftp_acme",
        remote_dir="/out/{date:%Y%m%d}",
        file="px.csv",
        manifest="manifest.json",
        compression="none",
        columns={"security_id": "ID", "ticker": "TICKER", "valid_date": "DATE", "close": "PX"},
        **extra,  # type: ignore[arg-type]
    )


DATA = b"ID,TICKER,DATE,PX\nA1,NA,2024-01-02,10.5\nA2,NULL,2024-01-02,\nA3,N/A,2024-01-02,7\n"


def test_na_null_and_n_a_are_tickers_by_default() -> None:
    batch = parse_file(_feed(), "px.csv", DATA)
    table = batch.table
    assert table.column("ticker").to_pylist() == ["NA", "NULL", "N/A"]
    assert table.column("close").to_pylist()[1] is None  # the empty cell is the gap


def test_declared_null_words_are_gaps() -> None:
    batch = parse_file(_feed(null_values=("", "N/A")), "px.csv", DATA)
    assert batch.table.column("ticker").to_pylist() == ["NA", "NULL", None]


def test_an_undeclared_null_word_in_a_number_fails_the_type_rule() -> None:
    """``N/A`` in a price is not silently NULL: the column stays text and the contract's
    type rule names the row."""
    import datetime as dt

    from pipelines.contracts import ValidationContext, validate_frame

    data = b"ID,TICKER,DATE,PX\nA1,NA,2024-01-02,10.5\nA2,X,2024-01-02,N/A\n"
    batch = parse_file(_feed(), "px.csv", data)
    assert [i.rule for i in batch.issues] == ["type.unparseable"]
    report = validate_frame(
        "prices",
        batch.table.drop_columns(["_source_line", "_source_file"]),
        ValidationContext(feed="acme_prices", logical_date=dt.date(2024, 1, 2)),
    )
    failure = report.failure("schema.close.type")
    assert failure is not None, report.failed_rules
    assert [int(i) for i in report.failed_row_indices() if i == 1] == [1]
