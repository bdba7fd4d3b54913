"""One test per vendor fault knob, through the real contract gate on the in-process vendor.

A blocking fault: the rule that names it (file and line where rows are at fault), nothing
in silver for the file, the raw bytes kept, a quarantine record with the reasons, and a
release after the fix loads the file. Late, missing and correction are not contract
failures: they are a wait, a loud failure and a later ``known_at`` version.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest

from pipelines.ingest import quarantine
from pipelines.ingest.feed_spec import FeedSpec
from pipelines.ingest.flow import BatchQuarantined, FeedNotPublished, ReleaseRefused, release
from pipelines.ingest.gate import contract_gate
from pipelines.ingest.runtime import VendorSources, ingest_day
from pipelines.lake import Lake
from pipelines.testing.backdate import HISTORY
from pipelines.vendors.faults import Fault
from pipelines.vendors.simulator import VendorSimulator
from tests.ingest.conftest import FAULT_DAYS, SFTP_FEEDS, inprocess

pytestmark = pytest.mark.unit

US = dt.timedelta(microseconds=1)
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)

#: fault → (rules that must name it, whether failing rows carry file lines)
BLOCKING: dict[str, tuple[set[str], bool]] = {
    "truncated_gzip": ({"file.decompress"}, False),
    "checksum_mismatch": ({"file.checksum"}, False),
    "schema_rename": ({"schema.close.present"}, False),
    "schema_retype": ({"schema.close.type"}, True),
    "duplicate_rows": ({"key.unique"}, True),
    "impossible_values": ({"close_positive", "high_ge_low", "volume_non_negative"}, True),
}


def _prices_on(lake: Lake, day: dt.date) -> int:
    return lake.as_of("prices", known_at=NOW, valid_at=day).num_rows


def _expected_lines(sim: VendorSimulator, day: dt.date, fault: str) -> set[int]:
    """File lines (header = line 1) of the rows the fault touched, per the simulator."""
    (effect,) = [e for e in sim.fault_effects(day) if e.kind is Fault(fault)]
    if fault == "schema_retype":  # every row is retyped
        return set(range(2, len(sim.clean_prices(day)) + 2))
    lines = {r + 2 for r in effect.rows}
    if fault == "duplicate_rows":  # both the original and its copy break the key
        ids = set(effect.security_ids)
        clean = sim.clean_prices(day)
        lines |= {i + 2 for i, s in enumerate(clean["SECID"]) if s in ids}
    return lines


@pytest.mark.parametrize("fault", sorted(BLOCKING))
def test_blocking_fault_is_quarantined_then_released_after_fix(
    fault: str,
    seeded_lake: Lake,
    sources: VendorSources,
    sim: VendorSimulator,
    fixed_sim: VendorSimulator,
    feeds: dict[str, FeedSpec],
) -> None:
    day = FAULT_DAYS[fault]
    rules, row_level = BLOCKING[fault]
    with pytest.raises(BatchQuarantined) as caught:
        ingest_day(seeded_lake, day, "vendor_prices", sources=sources, backdate=HISTORY)
    message = str(caught.value)
    (outcome,) = [o for o in caught.value.outcomes if o.status == "quarantined"]
    assert outcome.file_name == "prices.csv.gz"
    assert rules <= set(outcome.rules), outcome.rules
    assert "vendor_prices" in message and day.isoformat() in message
    for rule in rules:
        assert rule in message
    if row_level:
        assert "prices.csv.gz line " in message

    # Nothing reached silver; the raw bytes are kept, verified; the record explains why.
    assert _prices_on(seeded_lake, day) == 0
    rec = quarantine.get_record(seeded_lake, outcome.quarantine_id or "")
    assert rec["status"] == "open"
    assert rules <= set(json.loads(rec["rules"]))
    kept = Path(rec["raw_uri"].removeprefix("file://")).read_bytes()
    assert kept == sim.day_files(day)["prices.csv.gz"]
    assert hashlib.sha256(kept).hexdigest() == rec["sha256"]
    if row_level:
        sample_lines = {s["line"] for s in json.loads(rec["sample"])}
        assert sample_lines and sample_lines <= _expected_lines(sim, day, fault)

    # The same bytes still fail: release refuses and the record stays open.
    with pytest.raises(ReleaseRefused, match=r"prices\.csv\.gz"):
        release(seeded_lake, rec["quarantine_id"], contract_gate, feeds=feeds)
    assert quarantine.get_record(seeded_lake, rec["quarantine_id"])["status"] == "open"

    # The vendor re-delivers the day fixed: release fetches it, re-validates, loads.
    fixed = inprocess(fixed_sim).files
    loaded = release(
        seeded_lake,
        rec["quarantine_id"],
        contract_gate,
        feeds=feeds,
        source=fixed,
        actor="test",
        reason="vendor re-delivered",
    )
    assert loaded.status == "released"
    assert loaded.rows == _prices_on(seeded_lake, day) == len(sim.clean_prices(day))
    after = quarantine.get_record(seeded_lake, rec["quarantine_id"])
    assert after["status"] == "released" and after["actor"] == "test"
    assert json.loads(after["rules"]) == json.loads(rec["rules"])  # reasons kept
    assert "vendor re-delivered" in after["message"]
    assert quarantine.list_records(seeded_lake, "open") == []
    # A later daily re-run of the day is a no-op.
    again = ingest_day(
        seeded_lake, day, "vendor_prices", sources=inprocess(fixed_sim), backdate=HISTORY
    )
    assert [o.status for o in again] == ["unchanged"]


def test_impossible_values_released_by_operator_without_failing_rows(
    seeded_lake: Lake, sources: VendorSources, sim: VendorSimulator, feeds: dict[str, FeedSpec]
) -> None:
    day = FAULT_DAYS["impossible_values"]
    outcomes = ingest_day(
        seeded_lake,
        day,
        "vendor_prices",
        sources=sources,
        raise_on_quarantine=False,
        backdate=HISTORY,
    )
    (qid,) = [o.quarantine_id for o in outcomes if o.quarantine_id]
    loaded = release(
        seeded_lake, qid, contract_gate, feeds=feeds, drop_failing_rows=True, actor="ops"
    )
    (effect,) = sim.fault_effects(day)
    n = len(sim.clean_prices(day))
    assert loaded.rows == _prices_on(seeded_lake, day) == n - len(effect.rows)
    stored = set(seeded_lake.as_of("prices", known_at=NOW, valid_at=day)["security_id"].to_pylist())
    assert not stored & set(effect.security_ids)


def test_late_file_is_not_published_before_its_time_then_loads(
    seeded_lake: Lake, sim: VendorSimulator
) -> None:
    day = FAULT_DAYS["late"]
    scheduled, actual = sim.scheduled_publish(day), sim.publish_at(day)
    assert actual is not None and actual - scheduled == dt.timedelta(hours=5)
    early = inprocess(sim, scheduled + dt.timedelta(hours=1))
    for feed in SFTP_FEEDS:
        with pytest.raises(FeedNotPublished, match=f"{feed}: nothing published for {day}"):
            ingest_day(seeded_lake, day, feed, sources=early, backdate=HISTORY)
    assert _prices_on(seeded_lake, day) == 0
    on_time = inprocess(sim, actual)
    (outcome,) = ingest_day(seeded_lake, day, "vendor_prices", sources=on_time, backdate=HISTORY)
    assert outcome.status == "loaded"
    snap = seeded_lake.as_of("prices", known_at=actual, valid_at=day)
    assert set(snap["known_at"].to_pylist()) == {actual}  # knowable when it arrived
    assert seeded_lake.as_of("prices", known_at=actual - US, valid_at=day).num_rows == 0


def test_missing_day_fails_loudly_naming_feed_and_day(
    seeded_lake: Lake, sources: VendorSources
) -> None:
    day = FAULT_DAYS["missing"]
    raw_before = seeded_lake.status("raw_manifest").rows
    for feed in SFTP_FEEDS:
        with pytest.raises(FeedNotPublished) as caught:
            ingest_day(seeded_lake, day, feed, sources=sources, backdate=HISTORY)
        assert caught.value.feed == feed and caught.value.day == day
        assert f"{feed}: nothing published for {day.isoformat()}" in str(caught.value)
    assert seeded_lake.status("raw_manifest").rows == raw_before
    assert _prices_on(seeded_lake, day) == 0


def test_correction_is_a_later_known_at_version(
    seeded_lake: Lake, sources: VendorSources, sim: VendorSimulator
) -> None:
    day = FAULT_DAYS["correction"]
    next_day = sim.sessions[sim.sessions.index(day) + 1]
    (first,) = ingest_day(seeded_lake, day, "vendor_prices", sources=sources, backdate=HISTORY)
    assert first.status == "loaded"
    outcomes = ingest_day(seeded_lake, next_day, "vendor_prices", sources=sources, backdate=HISTORY)
    by_file = {o.file_name: o for o in outcomes}
    correction = by_file[f"prices_correction_{day.isoformat()}.csv.gz"]
    (effect,) = sim.fault_effects(day)
    assert correction.status == "loaded" and correction.rows == len(effect.rows)

    corrected_at = sim.publish_at(next_day)
    assert corrected_at is not None
    clean = sim.clean_prices(day).set_index("SECID")["PX_LAST"]
    before = seeded_lake.as_of("prices", known_at=corrected_at - US, valid_at=day)
    after = seeded_lake.as_of("prices", known_at=corrected_at, valid_at=day)
    old = dict(zip(before["security_id"].to_pylist(), before["close"].to_pylist(), strict=True))
    new = dict(zip(after["security_id"].to_pylist(), after["close"].to_pylist(), strict=True))
    for sid in effect.security_ids:
        assert old[sid] == pytest.approx(round(clean[sid] * 1.05, 4))
        assert new[sid] == pytest.approx(clean[sid])
        versions = seeded_lake.history("prices", {"security_id": sid})
        mine = [r for r in versions.to_pylist() if r["valid_date"] == day]
        assert [r["known_at"] for r in mine] == [sim.publish_at(day), corrected_at]
    untouched = set(old) - set(effect.security_ids)
    assert all(old[s] == new[s] for s in untouched)
    assert len(new) == len(old) == len(clean)
