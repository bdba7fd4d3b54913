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
