"""REST backfill bucketing: the vectorised window search answers as a per-record
``bisect`` did (same windows, same order within a window, same latest publish time), and
the canonical JSONL bytes are those of ``json.dumps(sort_keys, compact)`` per record."""

from __future__ import annotations

import bisect
import datetime as dt
import json
import random

import pytest

from pipelines.ingest.backfill import _bucket_by_window
from pipelines.ingest.sources import records_to_jsonl

pytestmark = pytest.mark.unit

T0 = dt.datetime(2024, 1, 2, 21, 30, tzinfo=dt.UTC)


def _reference(records, cutoffs, since, until):
    buckets: dict[int, list] = {}
    latest: dict[int, dt.datetime] = {}
    for rec in records:
        ts = dt.datetime.fromisoformat(rec["published_at"].replace("Z", "+00:00"))
        if (since is not None and ts <= since) or ts > until:
            continue
        b = bisect.bisect_left(cutoffs, ts)
        buckets.setdefault(b, []).append(rec)
        latest[b] = max(ts, latest.get(b, ts))
    return buckets, latest


@pytest.mark.parametrize("seed", range(5))
def test_vectorised_windows_match_a_search_per_record(seed: int) -> None:
    rng = random.Random(seed)
    cutoffs = [T0 + dt.timedelta(days=d) for d in range(30)]
    records = []
    for i in range(2000):
        # on a cutoff exactly, between cutoffs, before the first and after the last
        minutes = rng.choice([0, rng.randint(-2000, 31 * 1440)])
        ts = T0 + dt.timedelta(days=rng.randint(-1, 30), minutes=minutes, microseconds=i % 7)
        records.append({"id": i, "published_at": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")})
    since = cutoffs[0] if seed % 2 else None
    until = cutoffs[-1]
    got = _bucket_by_window(records, "published_at", cutoffs, since, until)
    assert got == _reference(records, cutoffs, since, until)


def test_no_records_no_windows() -> None:
    assert _bucket_by_window([], "published_at", [T0], None, T0) == ({}, {})


def test_jsonl_bytes_are_canonical() -> None:
    records = [{"b": 1.5, "a": "é", "c": None}, {"a": [1, 2], "b": {"y": 1, "x": 2}}]
    expected = b"".join(
        json.dumps(r, sort_keys=True, separators=(",", ":")).encode() + b"\n" for r in records
    )
    assert records_to_jsonl(records) == expected
    assert records_to_jsonl([]) == b""
