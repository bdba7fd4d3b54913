"""The ingestion's bookkeeping tables: raw-zone manifest, quarantine, validation, runs.

``valid_date`` of every row is the logical (business) date of the vendor delivery.
"""

from __future__ import annotations

import pyarrow as pa

from pipelines.lake.spec import UTC_TS, TableSpec, column

RAW_MANIFEST = TableSpec(
    name="raw_manifest",
    description="Every vendor file landed in the raw zone; a new sha256 for a name is a new version.",
    key=("feed", "file_name"),
    fields=(
        column("feed", pa.string(), False),
        column("file_name", pa.string(), False),
        column("sha256", pa.string(), False),
        column("size_bytes", pa.int64(), False),
        column("uri", pa.string(), False),
        column("file_version", pa.int32(), False, "1 for the first bytes seen under this name"),
        column("received_at", UTC_TS, False),
    ),
    valid_time_meaning="logical (business) date of the delivery",
)


QUARANTINE = TableSpec(
    name="quarantine",
    description="Vendor batches held back by a blocking contract rule; status changes are new versions.",
    key=("quarantine_id",),
    fields=(
        column("quarantine_id", pa.string(), False, "stable id: feed, day, file and sha256"),
        column("feed", pa.string(), False),
        column("target_table", pa.string(), False),
        column("file_name", pa.string(), False),
        column("sha256", pa.string()),
        column("raw_uri", pa.string()),
        column("status", pa.string(), False, "open | released | dropped"),
        column("rules", pa.string(), False, "JSON list of failing rule names"),
        column("failed_rows", pa.int64()),
        column("total_rows", pa.int64()),
        column("sample", pa.string(), doc="JSON: failing rows with file line and values"),
        column("message", pa.string(), False),
        column("actor", pa.string(), doc="who changed the status (release)"),
    ),
    valid_time_meaning="logical (business) date of the delivery",
)

VALIDATION_RESULTS = TableSpec(
    name="validation_results",
    description="One row per contract rule evaluated on a vendor batch.",
    key=("run_id", "rule"),
    fields=(
        column("run_id", pa.string(), False, "feed, file, sha256 and contract version"),
        column("dataset", pa.string(), False),
        column("feed", pa.string(), False),
        column("file_name", pa.string()),
        column("rule", pa.string(), False),
        column("expectation", pa.string()),
        column("policy", pa.string()),
        column("success", pa.bool_(), False),
        column("skipped", pa.bool_()),
        column("outcome", pa.string(), doc="passed | warned | blocked (the batch's)"),
        column("unexpected_count", pa.int64()),
        column("unexpected_percent", pa.float64()),
        column("sample", pa.string(), doc="JSON sample of failing rows"),
        column("message", pa.string()),
        column("rows", pa.int64()),
    ),
    valid_time_meaning="logical (business) date of the delivery",
)

INGEST_RUNS = TableSpec(
    name="ingest_runs",
    description="What each ingestion of a feed for a day did (freshness and audit).",
    key=("feed", "file_name"),
    fields=(
        column("feed", pa.string(), False),
        column("file_name", pa.string(), False),
        column("sha256", pa.string()),
        column("status", pa.string(), False, "loaded | quarantined | warned | released"),
        column("rows", pa.int64()),
        column(
            "published_at",
            UTC_TS,
            doc="the vendor's declared publish time (manifest, file time or record time): "
            "a claim kept for audit, not the rows' knowledge time",
        ),
        column("message", pa.string()),
        column(
            "rows_known_at",
            UTC_TS,
            doc="knowledge time the file's rows got: our receipt time, or the vendor's "
            "time under an explicit backdate",
        ),
        column("backdate", pa.string(), doc="who backdated the load and why; null = receipt"),
    ),
    valid_time_meaning="logical (business) date of the delivery",
)
