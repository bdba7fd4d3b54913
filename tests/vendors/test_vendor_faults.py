"""Unit tests: every fault knob does exactly what it says, on exactly the rows it reports."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import zlib
from datetime import date, timedelta
from typing import Any

import pandas as pd
import pytest

from pipelines.vendors.faults import Fault, FaultEffect, FaultPlan, FaultSpec
from pipelines.vendors.simulator import MissingDayError, VendorSimulator, correction_file_name

pytestmark = pytest.mark.unit

# Days of the fixture plan (tests/vendors/conftest.py: FAULT_YAML).
LATE, MISSING, TRUNCATED, CHECKSUM = (
    date(2023, 3, 6),
    date(2023, 3, 7),
    date(2023, 3, 8),
    date(2023, 3, 9),
)
RENAME, RETYPE, DUPES, IMPOSSIBLE = (
    date(2023, 3, 10),
    date(2023, 3, 13),
    date(2023, 3, 14),
    date(2023, 3, 15),
)
CORRECTION, AFTER_CORRECTION = date(2023, 3, 16), date(2023, 3, 17)


def _read(data: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(gzip.decompress(data)), dtype={"SECID": str})


def _manifest(files: dict[str, bytes]) -> dict[str, Any]:
    return json.loads(files["manifest.json"])


def _entries(files: dict[str, bytes]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in _manifest(files)["files"]}


def _effect(sim: VendorSimulator, day: date, kind: Fault) -> FaultEffect:
    return next(e for e in sim.fault_effects(day) if e.kind is kind)


def test_plan_yaml_round_trip(fault_plan: FaultPlan) -> None:
    assert fault_plan.get(LATE, Fault.LATE) == FaultSpec(Fault.LATE, hours=5)
    assert fault_plan.get(DUPES, Fault.DUPLICATE_ROWS).rows == 4  # type: ignore[union-attr]
    assert FaultPlan.from_dict(fault_plan.to_dict()) == fault_plan
    assert fault_plan.on(date(2023, 3, 20)) == ()
    days = [date(2023, 1, 3) + timedelta(days=i) for i in range(200)]
    rnd = FaultPlan.random(days, 0.1, seed=1)
    assert 5 < len(rnd.days) < 40
    assert rnd == FaultPlan.random(days, 0.1, seed=1)
    with pytest.raises(ValueError):
        FaultPlan.from_dict({"2023-03-06": ["no_such_fault"]})


def test_clean_day_manifest_is_consistent(sim: VendorSimulator) -> None:
    files = sim.day_files(date(2023, 3, 3))
    assert list(files)[-1] == "manifest.json"
    doc = _manifest(files)
    assert doc["business_date"] == "2023-03-03"
    assert doc["published_at"] == "2023-03-03T23:00:00Z"  # 18:00 EST
    for name, entry in _entries(files).items():
        assert hashlib.sha256(files[name]).hexdigest() == entry["sha256"]
        assert len(files[name]) == entry["size"]
        assert len(_read(files[name])) == entry["rows"]
    assert set(_entries(files)) == {
        "prices.csv.gz",
        "corporate_actions.csv.gz",
        "security_master.csv.gz",
    }


def test_late(sim: VendorSimulator) -> None:
    scheduled = sim.scheduled_publish(LATE)
    assert sim.publish_at(LATE) == scheduled + timedelta(hours=5)
    assert not sim.is_published(LATE, scheduled + timedelta(hours=4, minutes=59))
    assert sim.is_published(LATE, scheduled + timedelta(hours=5))
    assert LATE not in sim.visible_days(scheduled + timedelta(hours=1))
    assert _manifest(sim.day_files(LATE))["published_at"] == "2023-03-07T04:00:00Z"


def test_missing(sim: VendorSimulator) -> None:
    assert sim.publish_at(MISSING) is None
    with pytest.raises(MissingDayError):
        sim.day_files(MISSING)
    far_future = sim.scheduled_publish(sim.sessions[-1]) + timedelta(days=365)
    visible = sim.visible_days(far_future)
    assert MISSING not in visible and len(visible) == len(sim.sessions) - 1


def test_truncated_gzip(sim: VendorSimulator) -> None:
    files = sim.day_files(TRUNCATED)
    entry = _entries(files)["prices.csv.gz"]
    assert entry["sha256"] == hashlib.sha256(files["prices.csv.gz"]).hexdigest()
    assert entry["size"] == len(files["prices.csv.gz"])
    with pytest.raises((EOFError, zlib.error, gzip.BadGzipFile)):
        gzip.decompress(files["prices.csv.gz"])
    _read(files["corporate_actions.csv.gz"])  # other files are intact


def test_checksum_mismatch(sim: VendorSimulator) -> None:
    files = sim.day_files(CHECKSUM)
    entry = _entries(files)["prices.csv.gz"]
    assert entry["sha256"] != hashlib.sha256(files["prices.csv.gz"]).hexdigest()
    assert entry["size"] == len(files["prices.csv.gz"])
    pd.testing.assert_frame_equal(
        _read(files["prices.csv.gz"]),
        sim.clean_prices(CHECKSUM).astype({"PX_VOLUME": "int64"}),
        check_dtype=False,
    )


def test_schema_rename(sim: VendorSimulator) -> None:
    df = _read(sim.day_files(RENAME)["prices.csv.gz"])
    assert "PX_CLOSE" in df.columns and "PX_LAST" not in df.columns
    assert df["PX_CLOSE"].tolist() == sim.clean_prices(RENAME)["PX_LAST"].tolist()


def test_schema_retype(sim: VendorSimulator) -> None:
    df = _read(sim.day_files(RETYPE)["prices.csv.gz"])
    assert df["PX_LAST"].str.fullmatch(r"-?\d+\.\d{4}USD").all()
    clean = sim.clean_prices(RETYPE)["PX_LAST"]
    assert df["PX_LAST"].str.removesuffix("USD").astype(float).tolist() == clean.tolist()


def test_duplicate_rows(sim: VendorSimulator) -> None:
    files = sim.day_files(DUPES)
    df = _read(files["prices.csv.gz"])
    clean = sim.clean_prices(DUPES)
    eff = _effect(sim, DUPES, Fault.DUPLICATE_ROWS)
    assert len(df) == len(clean) + 4 == _entries(files)["prices.csv.gz"]["rows"]
    assert eff.rows == tuple(range(len(clean), len(clean) + 4))
    assert df.duplicated().sum() == 4
    assert df.iloc[list(eff.rows)]["SECID"].tolist() == list(eff.security_ids)


def test_impossible_values(sim: VendorSimulator) -> None:
    df = _read(sim.day_files(IMPOSSIBLE)["prices.csv.gz"])
    eff = _effect(sim, IMPOSSIBLE, Fault.IMPOSSIBLE_VALUES)
    assert len(eff.rows) == 3
    negative = df.index[df["PX_LAST"] <= 0].tolist()
    inverted = df.index[df["PX_HIGH"] < df["PX_LOW"]].tolist()
    neg_volume = df.index[df["PX_VOLUME"] < 0].tolist()
    assert negative == [eff.rows[0]]
    assert inverted == [eff.rows[1]]
    assert neg_volume == [eff.rows[2]]
    clean = sim.clean_prices(IMPOSSIBLE)
    untouched = df.drop(index=list(eff.rows))
    assert (untouched["PX_LAST"] == clean.drop(index=list(eff.rows))["PX_LAST"]).all()


def test_correction_resent_next_day(sim: VendorSimulator) -> None:
    bad = _read(sim.day_files(CORRECTION)["prices.csv.gz"])
    clean = sim.clean_prices(CORRECTION)
    eff = _effect(sim, CORRECTION, Fault.CORRECTION)
    assert len(eff.rows) == 2
    wrong = bad.index[bad["PX_LAST"].to_numpy() != clean["PX_LAST"].to_numpy()].tolist()
    assert wrong == list(eff.rows)
    assert (bad["PX_HIGH"] >= bad["PX_LAST"]).all()  # a plausible, not impossible, error
    name = correction_file_name(CORRECTION)
    assert name == "prices_correction_2023-03-16.csv.gz"
    assert name not in sim.day_files(CORRECTION)
    nxt = sim.day_files(AFTER_CORRECTION)
    assert name in _entries(nxt)
    fix = _read(nxt[name])
    assert fix["SECID"].tolist() == list(eff.security_ids)
    assert (fix["TRADE_DATE"] == "2023-03-16").all()
    expected = clean.iloc[list(eff.rows)].reset_index(drop=True)
    assert fix["PX_LAST"].tolist() == expected["PX_LAST"].tolist()
    assert sim.publish_at(AFTER_CORRECTION) > sim.publish_at(CORRECTION)  # type: ignore[operator]


def test_faults_do_not_leak_to_other_days(sim: VendorSimulator) -> None:
    for day in (date(2023, 3, 3), date(2023, 3, 20)):
        files = sim.day_files(day)
        assert sim.fault_effects(day) == ()
        assert set(_entries(files)) == {
            "prices.csv.gz",
            "corporate_actions.csv.gz",
            "security_master.csv.gz",
        }
        assert len(_read(files["prices.csv.gz"])) == len(sim.clean_prices(day))
