"""The vendor's manifest as a contract on the delivery.

A feed that declares a ``manifest`` gets every delivered file checked against it before
its rows are read, and its row count after:

* ``file.manifest_duplicate`` — the manifest lists the file more than once (same or
  conflicting checksums): which entry is true cannot be told, so the file is held;
* ``file.manifest_missing`` — the file is not in the manifest: its checksum cannot be
  verified, so it is held (a vendor adds every file of the folder);
* ``file.checksum`` — its sha256 differs from the manifest's;
* ``file.row_count`` — the manifest's ``rows`` (data rows, header excluded) differs from
  the rows read: a truncated or padded file.

Each is a batch-level failure: the file is quarantined whole, naming the file and rule.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pipelines.ingest.feed_spec import FeedSpec


def entries(manifest: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], frozenset[str]]:
    """The manifest's file entries by name, and the names listed more than once."""
    files = [f for f in manifest.get("files", []) if isinstance(f, dict) and "name" in f]
    counts = Counter(str(f["name"]) for f in files)
    return {str(f["name"]): f for f in files}, frozenset(n for n, c in counts.items() if c > 1)


def delivery_problem(
    feed: FeedSpec, manifest: dict[str, Any], name: str, sha256: str
) -> tuple[str, str] | None:
    """``(rule, message)`` when the delivered file ``name`` with ``sha256`` disagrees with
    the feed's manifest; None when it agrees (or the feed declares no manifest)."""
    if not feed.manifest:
        return None
    listed, duplicated = entries(manifest)
    if name in duplicated:
        shas = sorted(
            {str(f.get("sha256")) for f in manifest.get("files", []) if f.get("name") == name}
        )
        what = "the same checksum" if len(shas) == 1 else f"{len(shas)} different checksums"
        return "file.manifest_duplicate", f"the manifest lists {name} more than once ({what})"
    entry = listed.get(name)
    if entry is None:
        return "file.manifest_missing", f"{name} is not in the manifest: its checksum is unknown"
    if entry.get("sha256") != sha256:
        return (
            "file.checksum",
            f"sha256 {sha256[:16]}… does not match the manifest's {str(entry.get('sha256'))[:16]}…",
        )
    return None


def row_count_problem(
    feed: FeedSpec, manifest: dict[str, Any], name: str, rows: int
) -> tuple[str, str] | None:
    """``(rule, message)`` when the manifest states a row count for ``name`` that differs
    from the ``rows`` read."""
    if not feed.manifest:
        return None
    entry = entries(manifest)[0].get(name)
    stated = entry.get("rows") if entry is not None else None
    if stated is None:
        return None
    try:
        expected = int(stated)
    except (TypeError, ValueError):
        return "file.row_count", f"the manifest's row count for {name} is not a number: {stated!r}"
    if expected != rows:
        return (
            "file.row_count",
            f"{name} has {rows} data rows, the manifest says {expected}",
        )
    return None


__all__ = ["delivery_problem", "entries", "row_count_problem"]
