"""What a validation run says: :class:`ValidationReport`, :class:`RuleResult`, :class:`RuleFailure`.

The report is plain data (no GX objects needed to read it). ``to_rows`` flattens it to the
``validation_results`` lake table (declared in :mod:`pipelines.lake.catalog`).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from pipelines.contracts.spec import FailurePolicy

#: Files a message names before it says "and N more" (a backfill chunk holds hundreds).
NAMED_FILES = 3


def name_files(files: list[str] | tuple[str, ...], limit: int = NAMED_FILES) -> str:
    """``a;b;c and 123 more``: at most ``limit`` file names, then how many were left out."""
    shown = ";".join(files[:limit])
    rest = len(files) - limit
    return f"{shown} and {rest} more" if rest > 0 else shown


class Outcome(StrEnum):
    """The batch's fate: no failures / only ``warn`` rules failed / a ``block`` rule failed."""

    PASSED = "passed"
    WARNED = "warned"
    BLOCKED = "blocked"


class RuleStatus(StrEnum):
    """How one rule came out; ``skipped`` = could not be evaluated (reason in ``note``)."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class FailingRow:
    """One failing row: its 0-based position in the validated frame, origin and values."""

    index: int
    file: str | None
    line: int | None
    values: dict[str, Any]

    def where(self) -> str:
        """``prices.csv.gz line 17 (row 15)`` — as much as is known."""
        parts = []
        if self.file:
            parts.append(self.file)
        if self.line is not None:
            parts.append(f"line {self.line}")
        loc = " ".join(parts)
        return f"{loc} (row {self.index})" if loc else f"row {self.index}"


@dataclass(frozen=True)
class RuleFailure:
    """A failed rule: counts from GX, a sample of ≤ 5 failing rows, a plain-English message.

    ``row_indices`` holds *every* failing row position for row-level rules and is None
    for batch-level rules (missing column, row count, freshness of the maximum).
    """

    rule: str
    columns: tuple[str, ...]
    expectation_type: str
    policy: FailurePolicy
    unexpected_count: int | None
    unexpected_percent: float | None
    sample: tuple[FailingRow, ...]
    message: str
    observed_value: Any = None
    row_indices: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def row_level(self) -> bool:
        """True when the failure is pinned to rows (see ``row_indices``)."""
        return self.row_indices is not None


@dataclass(frozen=True)
class RuleResult:
    """One rule's outcome, whether it passed, failed or was skipped."""

    rule: str
    columns: tuple[str, ...]
    expectation_type: str
    policy: FailurePolicy
    status: RuleStatus
    description: str
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    observed_value: Any = None
    note: str = ""


def _jsonable(v: Any) -> Any:
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and v != v:
        return None
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if v is None or isinstance(v, str | int | float | bool):
        return v
    return str(v)


@dataclass
class ValidationReport:
    """The result of validating one frame against one contract."""

    run_id: str
    dataset: str
    feed: str
    logical_date: dt.date
    source_files: tuple[str, ...]
    success: bool
    outcome: Outcome
    rows: int
    duration_s: float
    validated_at: dt.datetime
    results: list[RuleResult]
    failures: list[RuleFailure]
    #: The raw GX ``ExpectationSuiteValidationResult`` (for Data Docs); None if GX did not run.
    gx_result: Any = field(default=None, repr=False, compare=False)

    @property
    def blocked(self) -> bool:
        """True when the batch must not reach the silver table."""
        return self.outcome is Outcome.BLOCKED

    def failure(self, rule: str) -> RuleFailure | None:
        """The failure of ``rule``, or None if it did not fail."""
        return next((f for f in self.failures if f.rule == rule), None)

    @property
    def failed_rules(self) -> list[str]:
        """Names of the failed rules, in evaluation order."""
        return [f.rule for f in self.failures]

    def batch_level_failures(
        self, policy: FailurePolicy | None = FailurePolicy.BLOCK
    ) -> list[RuleFailure]:
        """Failures that cannot be pinned to rows (the whole batch is affected).

        ``policy`` filters by rule policy (default: only blocking ones); None = all.
        """
        return [
            f for f in self.failures if not f.row_level and (policy is None or f.policy is policy)
        ]

    def failed_row_indices(self, policy: FailurePolicy | None = FailurePolicy.BLOCK) -> np.ndarray:
        """Sorted, unique 0-based positions of rows failing a row-level rule.

        ``policy`` filters by rule policy (default: rows failing a *blocking* rule, i.e.
        what to quarantine); None = rows failing any rule. Batch-level failures add no
        rows — check :meth:`batch_level_failures` before quarantining only these rows.
        """
        parts = [
            f.row_indices
            for f in self.failures
            if f.row_indices is not None and (policy is None or f.policy is policy)
        ]
        if not parts:
            return np.empty(0, dtype=np.int64)
        return np.unique(np.concatenate(parts)).astype(np.int64)

    def summary(self) -> str:
        """One line per failure, headed by the outcome (for logs and alerts)."""
        head = f"{self.dataset} {self.logical_date} ({self.rows} rows): {self.outcome.value}"
        return "\n".join([head, *(f"  [{f.policy.value}] {f.message}" for f in self.failures)])

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per rule (evaluated or skipped), shaped for the ``validation_results``
        lake table declared in :mod:`pipelines.lake.catalog` — write them as they are.

        Keys: run_id, dataset, feed, file_name (files of the failing rows, else the batch's
        files, ``;``-joined), rule, expectation (GX type), policy, success (False only for a
        failed rule), skipped, outcome (the batch's), unexpected_count, unexpected_percent,
        sample (JSON list of ≤ 5 failing rows: index, file, line, values), message,
        rows (batch row count), valid_date (= logical date), known_at (= validated_at).
        """
        failures = {f.rule: f for f in self.failures}
        all_files = ";".join(self.source_files) or None
        out = []
        for r in self.results:
            f = failures.get(r.rule)
            sample = [] if f is None else [_jsonable(row.__dict__) for row in f.sample]
            files = sorted({s["file"] for s in sample if s.get("file")})
            out.append(
                {
                    "run_id": self.run_id,
                    "dataset": self.dataset,
                    "feed": self.feed,
                    "file_name": ";".join(files) if files else all_files,
                    "rule": r.rule,
                    "expectation": r.expectation_type,
                    "policy": r.policy.value,
                    "success": r.status is not RuleStatus.FAILED,
                    "skipped": r.status is RuleStatus.SKIPPED,
                    "outcome": self.outcome.value,
                    "unexpected_count": r.unexpected_count,
                    "unexpected_percent": r.unexpected_percent,
                    "sample": json.dumps(sample) if sample else None,
                    "message": f.message if f is not None else (r.note or None),
                    "rows": self.rows,
                    "valid_date": self.logical_date,
                    "known_at": self.validated_at,
                }
            )
        return out
