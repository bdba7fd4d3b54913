"""Quarantine release fails closed (issue 15): compare-and-swap, and upstream quarantine.

* A quarantined day re-sent and loaded, then the stale record released with
  ``--drop-failing-rows``, used to overwrite the good load. The stale record is now closed
  as ``superseded`` (naming the newer batch) and nothing is loaded.
* Prices rejected only because the day's security master is quarantined name that record
  (``blocked by Q…``) and are released, re-validated, when it is.
"""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines.ingest import quarantine
from pipelines.ingest.feed_spec import FeedSpec
from pipelines.ingest.flow import ReleaseRefused, release, silver_batch_id
from pipelines.ingest.gate import GateContext, GateResult, contract_gate
from pipelines.ingest.parse import ParsedBatch
from pipelines.ingest.runtime import VendorSources, ingest_day
from pipelines.lake import Lake
from pipelines.vendors.simulator import VendorSimulator
from tests.ingest.conftest import FAULT_DAYS, inprocess

pytestmark = pytest.mark.unit

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def _closes(lake: Lake, day: dt.date) -> dict[str, float]:
    snap = lake.as_of("prices", known_at=NOW, valid_at=day)
    return dict(zip(snap["security_id"].to_pylist(), snap["close"].to_pylist(), strict=True))


def _batches(lake: Lake, day: dt.date) -> set[str]:
    """Which deliveries the as-of read of ``day``'s prices comes from."""
    snap = lake.as_of("prices", known_at=NOW, valid_at=day)
    return set(snap["_batch_id"].to_pylist())


def test_a_stale_record_reloaded_since_is_superseded_not_released(
    seeded_lake: Lake,
    sources: VendorSources,
    fixed_sim: VendorSimulator,
    feeds: dict[str, FeedSpec],
) -> None:
    day = FAULT_DAYS["impossible_values"]
    outcomes = ingest_day(
        seeded_lake, day, "vendor_prices", sources=sources, raise_on_quarantine=False
    )
    (qid,) = [o.quarantine_id for o in outcomes if o.quarantine_id]
    # The vendor re-sends the day fixed and the daily re-run loads it (raw version 2).
    (resent,) = ingest_day(seeded_lake, day, "vendor_prices", sources=inprocess(fixed_sim))
    assert resent.status == "loaded"
    good = _closes(seeded_lake, day)
    newer = {silver_batch_id("vendor_prices", day, "prices.csv.gz", resent.sha256 or "")}
    assert _batches(seeded_lake, day) == newer
    version = seeded_lake.status("prices").version
    clean = fixed_sim.clean_prices(day)
    assert good == pytest.approx(dict(zip(clean["SECID"], clean["PX_LAST"], strict=True)))

    # No longer open: the newer load replaced it.
    assert qid not in {r["quarantine_id"] for r in quarantine.list_records(seeded_lake, "open")}
    (listed,) = [r for r in quarantine.list_records(seeded_lake, None) if r["quarantine_id"] == qid]
    assert listed["status"] == "superseded"

    # Releasing the stale bytes closes the record and loads nothing: the good load stays.
    out = release(seeded_lake, qid, contract_gate, feeds=feeds, drop_failing_rows=True, actor="ops")
    assert out.status == "superseded" and out.rows == 0
    assert "raw version 2" in out.message and (resent.sha256 or "")[:16] in out.message
    assert "\n" not in out.message
    assert _closes(seeded_lake, day) == good
    assert _batches(seeded_lake, day) == newer  # every row still from the re-sent file
    assert seeded_lake.status("prices").version == version  # nothing written
    rec = quarantine.get_record(seeded_lake, qid)
    assert rec["status"] == "superseded" and rec["actor"] == "ops"
    assert "superseded by vendor_prices" in rec["message"]
    with pytest.raises(ReleaseRefused, match="superseded, not open"):
        release(seeded_lake, qid, contract_gate, feeds=feeds, drop_failing_rows=True)


def test_a_record_older_than_its_load_is_still_released(
    seeded_lake: Lake,
    sources: VendorSources,
    fixed_sim: VendorSimulator,
    feeds: dict[str, FeedSpec],
) -> None:
    """Compare-and-swap compares deliveries: a load of an *earlier* version is no veto."""
    day = FAULT_DAYS["impossible_values"]
    (first,) = ingest_day(seeded_lake, day, "vendor_prices", sources=inprocess(fixed_sim))
    assert first.status == "loaded"
    outcomes = ingest_day(
        seeded_lake, day, "vendor_prices", sources=sources, raise_on_quarantine=False
    )
    (qid,) = [o.quarantine_id for o in outcomes if o.quarantine_id]
    assert qid in {r["quarantine_id"] for r in quarantine.list_records(seeded_lake, "open")}
    out = release(seeded_lake, qid, contract_gate, feeds=feeds, drop_failing_rows=True)
    assert out.status == "released" and out.rows > 0


def _master_held(feed: FeedSpec, batch: ParsedBatch, ctx: GateContext) -> GateResult:
    """The real contracts, except that the security master is held back (batch-level)."""
    if feed.table == "security_master":
        return GateResult(
            outcome="blocked",
            rules=["test.held"],
            message=f"{batch.file_name}: rule test.held: held back by the test",
            batch_level=True,
        )
    return contract_gate(feed, batch, ctx)


def test_prices_blocked_by_a_quarantined_master_are_released_with_it(
    lake: Lake, sources: VendorSources, sim: VendorSimulator, feeds: dict[str, FeedSpec]
) -> None:
    day = sim.sessions[0]  # every security is new that day
    (master,) = ingest_day(
        lake,
        day,
        "vendor_security_master",
        sources=sources,
        gate=_master_held,
        raise_on_quarantine=False,
    )
    assert master.status == "quarantined" and master.quarantine_id
    (prices,) = ingest_day(lake, day, "vendor_prices", sources=sources, raise_on_quarantine=False)
    assert prices.status == "quarantined" and prices.quarantine_id
    assert "security_known" in prices.rules
    assert f"blocked by {master.quarantine_id}" in prices.message
    rec = quarantine.get_record(lake, prices.quarantine_id)
    assert quarantine.blocked_by(rec) == [master.quarantine_id]

    # Releasing the master releases the prices with it: re-validated, loaded, audited.
    out = release(lake, master.quarantine_id, contract_gate, feeds=feeds, actor="ops")
    assert out.status == "released"
    (dep,) = out.dependents
    assert dep.status == "released" and dep.quarantine_id == prices.quarantine_id
    assert dep.rows == len(sim.clean_prices(day)) == len(_closes(lake, day))
    after = quarantine.get_record(lake, prices.quarantine_id)
    assert after["status"] == "released" and after["actor"] == "ops"
    assert f"automatically, upstream {master.quarantine_id} released" in after["message"]
    assert quarantine.list_records(lake, "open") == []


def test_a_backfill_chunk_names_the_upstream_quarantine_too(
    lake: Lake, sources: VendorSources, sim: VendorSimulator, feeds: dict[str, FeedSpec]
) -> None:
    """The backfill validates a chunk at once: a prices file failing ``security_known``
    because the chunk's master file is quarantined names that record as well."""
    from pipelines.ingest.runtime import backfill

    days = list(sim.sessions[:2])
    out = backfill(
        lake,
        days,
        feed_names=["vendor_security_master", "vendor_prices"],
        source_factory=lambda: sources.files,
        gate=_master_held,
        workers=1,
    )
    masters = {o.logical_date: o for o in out["vendor_security_master"]}
    first = masters[days[0]]
    assert first.status == "quarantined" and first.quarantine_id
    prices = {o.logical_date: o for o in out["vendor_prices"]}[days[0]]
    assert prices.status == "quarantined" and "security_known" in prices.rules
    rec = quarantine.get_record(lake, prices.quarantine_id or "")
    assert first.quarantine_id in quarantine.blocked_by(rec), rec["message"][-300:]
