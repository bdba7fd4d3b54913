"""A CSV field is null only when empty: the ticker ``NA`` is the text ``NA`` (issue 13)."""

from __future__ import annotations

import pytest

from pipelines.ingest.feed_spec import FeedSpec
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
