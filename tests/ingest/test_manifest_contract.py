"""The manifest is a contract on the delivery (issue 15): a file listed twice, a file the
manifest does not list, and a row count that differs from the manifest's were all
accepted; each is now quarantined whole, naming the file and the rule — by the daily path
and by the backfill alike."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest

from pipelines.ingest.backfill import backfill_sftp
from pipelines.ingest.feed_spec import FeedSpec
from pipelines.ingest.flow import ingest_sftp_day
from pipelines.ingest.gate import Gate, pass_all
from pipelines.lake import Lake
from pipelines.testing.vendor_folder import MemoryFolder

pytestmark = pytest.mark.unit

DAY = dt.date(2024, 3, 5)
FOLDER = "/out/20240305"
CSV = b"ID,DATE,PX\nA,2024-03-05,10\nB,2024-03-05,11\nC,2024-03-05,12\n"


def _feed() -> FeedSpec:
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
        columns={"security_id": "ID", "valid_date": "DATE", "close": "PX"},
    )


def _manifest(entries: list[dict[str, object]]) -> bytes:
    return json.dumps({"published_at": "2024-03-05T22:00:00+00:00", "files": entries}).encode()


SHA = hashlib.sha256(CSV).hexdigest()
CASES = {
    "listed twice": (
        [{"name": "px.csv", "sha256": SHA, "rows": 3}, {"name": "px.csv", "sha256": "0" * 64}],
        "file.manifest_duplicate",
    ),
    "not listed": ([{"name": "other.csv", "sha256": SHA}], "file.manifest_missing"),
    "row count differs": ([{"name": "px.csv", "sha256": SHA, "rows": 50}], "file.row_count"),
}


def _tree(entries: list[dict[str, object]]) -> MemoryFolder:
    return MemoryFolder({f"{FOLDER}/px.csv": CSV, f"{FOLDER}/manifest.json": _manifest(entries)})


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_daily_path_quarantines_a_delivery_the_manifest_disowns(
    case: str, tmp_path: Path
) -> None:
    entries, rule = CASES[case]
    lake = Lake(str(tmp_path / "lake"))
    gate: Gate = pass_all
    (outcome,) = ingest_sftp_day(
        lake, _feed(), DAY, _tree(entries), gate, raise_on_quarantine=False
    )
    assert outcome.status == "quarantined", outcome
    assert rule in outcome.rules and "px.csv" in outcome.message


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_backfill_quarantines_it_too(case: str, tmp_path: Path) -> None:
    entries, rule = CASES[case]
    lake = Lake(str(tmp_path / "lake"))
    source = _tree(entries)
    out = backfill_sftp(lake, [_feed()], [DAY], lambda _conn: source, pass_all, workers=1)
    (outcome,) = out["acme_prices"]
    assert outcome.status == "quarantined", outcome
    assert rule in outcome.rules


def test_an_agreeing_manifest_loads() -> None:
    from pipelines.ingest.manifest import delivery_problem, row_count_problem

    manifest = json.loads(_manifest([{"name": "px.csv", "sha256": SHA, "rows": 3}]))
    assert delivery_problem(_feed(), manifest, "px.csv", SHA) is None
    assert row_count_problem(_feed(), manifest, "px.csv", 3) is None
