"""Run a contract against a mapped vendor frame: :func:`validate_frame`.

Flow: put declared columns in canonical form (:mod:`~pipelines.contracts.coerce`), decide
which rules can run on this frame (a rule over a missing or mistyped column is *skipped*
— the schema rule already fails — instead of crashing GX), run the cached GX suite once
with ``SUMMARY`` results, then name failing rows with each rule's vectorised mask.

Data problems never raise: a broken frame yields a report whose failures name the rule,
the file, the row and the values.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from pipelines.contracts.coerce import coerce_column
from pipelines.contracts.gx_suite import cached_suite, compiled_rules, gx_runtime
from pipelines.contracts.report import (
    FailingRow,
    Outcome,
    RuleFailure,
    RuleResult,
    RuleStatus,
    ValidationReport,
    name_files,
)
from pipelines.contracts.resolve import load_contract
from pipelines.contracts.rules import HELPER_PREFIX, BatchFacts, CompiledRule, FrameShape
from pipelines.contracts.spec import Contract, FailurePolicy

SAMPLE_SIZE = 5
ArrayLike = Sequence[Any] | np.ndarray | pd.Series


@dataclass(frozen=True)
class RowOrigin:
    """Where each row of the frame came from (for frames concatenated from many files).

    Give either column names of the frame (``file_column``/``line_column``; those columns
    are not validated) or per-row arrays (``files``/``lines``), aligned with the frame.
    Lines are the caller's notion (e.g. 1-based line in the CSV, header = line 1).
    """

    file_column: str | None = None
    line_column: str | None = None
    files: ArrayLike | None = None
    lines: ArrayLike | None = None

    @classmethod
    def single_file(cls, name: str, n_rows: int, first_line: int = 2) -> RowOrigin:
        """Rows ``0..n-1`` are consecutive lines of one file starting at ``first_line``."""
        return cls(files=np.full(n_rows, name, dtype=object), lines=np.arange(n_rows) + first_line)

    def columns(self) -> list[str]:
        """Frame columns that carry origin, not data."""
        return [c for c in (self.file_column, self.line_column) if c]

    def resolve(self, frame: pd.DataFrame) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Per-row (files, lines) arrays; a missing or misaligned source gives None."""

        def pick(col: str | None, arr: ArrayLike | None) -> np.ndarray | None:
            if col is not None and col in frame.columns:
                return frame[col].to_numpy()
            if arr is not None and len(arr) == len(frame):
                return np.asarray(arr)
            return None

        return pick(self.file_column, self.files), pick(self.line_column, self.lines)


@dataclass(frozen=True)
class ValidationContext:
    """What the caller knows about the batch being validated.

    ``previous_row_count`` feeds day-over-day row-count rules, ``known_security_ids`` (the
    security master as known at the batch's knowledge time) referential rules, and
    ``expected_publish_time`` publish-freshness rules; a rule whose input is None is
    reported as skipped.
    """

    feed: str
    logical_date: dt.date
    source_files: tuple[str, ...] = ()
    previous_row_count: int | None = None
    known_security_ids: Collection[str] | None = None
    expected_publish_time: dt.datetime | None = None
    row_origin: RowOrigin | None = None
    run_id: str | None = None
    #: Knowledge time of every row when the frame has no ``known_at`` column (as
    #: ``Lake.write(known_at=...)`` fills it at write time).
    known_at: dt.datetime | None = None
    #: Per-row logical dates (aligned with the frame) when the frame concatenates several
    #: deliveries (a backfill chunk): freshness rules then judge each row by its own day.
    row_logical_dates: np.ndarray | None = None
    #: Per-row knowledge batch labels (aligned with the frame) when the frame holds several
    #: knowledge batches: key uniqueness is then judged within each batch (one version of
    #: a key per batch), never across versions. ``None`` = one batch.
    row_batches: np.ndarray | None = None
    #: Securities delisted as known at the batch's knowledge time (id → last trading date).
    delisted: Mapping[str, dt.date] | None = None

    def facts(self) -> BatchFacts:
        """The subset of the context rules read."""
        ids = self.known_security_ids
        return BatchFacts(
            logical_date=self.logical_date,
            previous_row_count=self.previous_row_count,
            known_security_ids=None if ids is None else frozenset(ids),
            expected_publish_time=self.expected_publish_time,
            row_logical_dates=self.row_logical_dates,
            row_batches=self.row_batches,
            delisted=self.delisted,
        )


def _canonical_view(
    contract: Contract, frame: pd.DataFrame, origin_cols: Collection[str]
) -> tuple[pd.DataFrame, FrameShape, dict[str, str]]:
    """The frame GX sees (declared columns canonical, positional index) and its shape."""
    data: dict[str, pd.Series] = {}
    missing, mistyped, observed = set(), set(), {}
    for col, spec in contract.columns.items():
        if col not in frame.columns:
            missing.add(col)
            continue
        coerced = coerce_column(frame[col], spec.type)
        data[col] = coerced.series
        observed[col] = coerced.observed
        if not coerced.ok:
            mistyped.add(col)
    for col in frame.columns:
        if col not in contract.columns and col not in origin_cols:
            data[str(col)] = frame[col]
    view = pd.DataFrame(data, index=frame.index, copy=False)
    shape = FrameShape(
        missing=frozenset(missing),
        mistyped=frozenset(mistyped),
        present_declared=tuple(c for c in contract.columns if c not in missing),
    )
    return view, shape, observed


def _py(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, pd.Timestamp):
        # Date columns are held as midnight timestamps; show them as dates.
        if v.tzinfo is None and v == v.normalize():
            return v.date().isoformat()
        return v.isoformat()
    if v is pd.NaT or (isinstance(v, float) and v != v):
        return None
    return v


class _Locator:
    """Turns row positions into :class:`FailingRow` samples and file names."""

    def __init__(self, view: pd.DataFrame, ctx: ValidationContext, frame: pd.DataFrame) -> None:
        self.view = view
        files, lines = ctx.row_origin.resolve(frame) if ctx.row_origin else (None, None)
        self.files = files
        self.lines = lines
        self.default_file = ctx.source_files[0] if len(ctx.source_files) == 1 else None

    def file_of(self, i: int) -> str | None:
        return str(self.files[i]) if self.files is not None else self.default_file

    def row(self, i: int, columns: Sequence[str]) -> FailingRow:
        values = {c: _py(self.view[c].iloc[i]) for c in columns if c in self.view.columns}
        line = None if self.lines is None else int(self.lines[i])
        return FailingRow(index=i, file=self.file_of(i), line=line, values=values)

    def files_of(self, idx: np.ndarray) -> list[str]:
        if self.files is None:
            return [self.default_file] if self.default_file else []
        return sorted({str(f) for f in pd.unique(self.files[idx])})


def _context_columns(contract: Contract, rule: CompiledRule) -> list[str]:
    """Columns shown for a failing row: the rule's, then the key, then valid_date."""
    cols = list(rule.columns)
    for c in [*contract.key, "security_id", "valid_date"]:
        if c in contract.columns and c not in cols:
            cols.append(c)
    return cols


def _batch_message(
    rule: CompiledRule, where: str, shape: FrameShape, view: pd.DataFrame, observed: Any
) -> str:
    if rule.kind == "column_present":
        extra = sorted(set(map(str, view.columns)) - set(shape.present_declared))
        extra = [c for c in extra if not c.startswith(HELPER_PREFIX)]
        hint = f"; unexpected columns present: {extra} (renamed upstream?)" if extra else ""
        return f"{where}: rule '{rule.name}' failed: column {rule.columns[0]!r} is missing{hint}"
    if rule.kind == "unexpected_columns":
        extras = observed.get("unexpected") if isinstance(observed, dict) else None
        return f"{where}: rule '{rule.name}' failed: unexpected columns {extras}"
    if rule.kind == "column_type":
        return (
            f"{where}: rule '{rule.name}' failed: {rule.description}, "
            f"but the column holds {observed}"
        )
    return f"{where}: rule '{rule.name}' ({rule.description}) failed: observed {observed}"


def validate_frame(
    contract: Contract | str, frame: pd.DataFrame | pa.Table, context: ValidationContext
) -> ValidationReport:
    """Validate ``frame`` (a vendor file mapped onto lake column names) against ``contract``
    (a :class:`Contract`, or a dataset name resolved on the contract search path).

    Returns a report with one :class:`RuleResult` per rule and one :class:`RuleFailure`
    per failed rule; ``outcome`` is ``blocked`` if a ``block`` rule failed, ``warned`` if
    only ``warn`` rules failed, else ``passed``. Never raises for bad data. Row indices in
    the report are 0-based positions in ``frame``. The caller's frame is not modified.
    """
    started = time.perf_counter()
    if isinstance(contract, str):
        contract = load_contract(contract)
    if isinstance(frame, pa.Table):
        # datetime64 dates convert ~100x faster than Python date objects downstream.
        frame = frame.to_pandas(date_as_object=False)
    if (
        not isinstance(frame.index, pd.RangeIndex)
        or frame.index.start != 0
        or frame.index.step != 1
    ):
        # GX reports index labels; a fresh positional index makes them row positions.
        frame = frame.reset_index(drop=True)
    if context.known_at is not None and "known_at" not in frame.columns:
        frame = frame.assign(known_at=pd.Timestamp(context.known_at).tz_convert("UTC"))
    origin_cols = context.row_origin.columns() if context.row_origin else []
    facts = context.facts()
    view, shape, observed_types = _canonical_view(contract, frame, origin_cols)

    rules = compiled_rules(contract)
    runnable: list[CompiledRule] = []
    skipped: dict[str, str] = {}
    params: dict[str, Any] = {}
    for rule in rules:
        reason = rule.skip_reason(shape, facts, len(view))
        if reason is not None:
            skipped[rule.name] = reason
            continue
        runnable.append(rule)
        params.update(rule.param_values(facts))
        if rule.helper is not None:
            name, build = rule.helper
            view[name] = build(view, facts)
    shape = replace(shape, helpers=tuple(r.helper[0] for r in runnable if r.helper))

    runtime = gx_runtime()
    suite = cached_suite(contract, runnable, shape)
    batch = runtime.batch_definition.get_batch(batch_parameters={"dataframe": view})
    gx_result = batch.validate(
        suite,
        expectation_parameters=params,
        result_format={"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_SIZE},
    )
    by_rule = {
        (r.expectation_config.meta or {})["rule"]: r
        for r in gx_result.results
        if r.expectation_config is not None
    }

    n = len(view)
    locator = _Locator(view, context, frame)
    all_files = name_files(context.source_files) or "<frame>"
    results: list[RuleResult] = []
    failures: list[RuleFailure] = []
    for rule in rules:
        base: dict[str, Any] = {
            "rule": rule.name,
            "columns": rule.columns,
            "expectation_type": rule.expectation_type,
            "policy": rule.policy,
            "description": rule.description,
        }
        if rule.name in skipped:
            results.append(RuleResult(status=RuleStatus.SKIPPED, note=skipped[rule.name], **base))
            continue
        res = by_rule[rule.name]
        info = res.result or {}
        observed = info.get("observed_value")
        if rule.kind == "column_type":
            observed = observed_types.get(rule.columns[0], observed)
        if rule.kind == "unexpected_columns" and not res.success:
            observed = (info.get("details") or {}).get("mismatched", observed)
        count = info.get("unexpected_count")
        pct = info.get("unexpected_percent")
        exc = res.exception_info or {}
        raised = bool(exc.get("raised_exception")) if isinstance(exc, dict) else False
        if res.success and not raised:
            results.append(
                RuleResult(
                    status=RuleStatus.PASSED,
                    unexpected_count=count,
                    unexpected_percent=pct,
                    observed_value=observed,
                    **base,
                )
            )
            continue

        indices: np.ndarray | None = None
        sample: tuple[FailingRow, ...] = ()
        if rule.mask is not None and not raised:
            indices = np.flatnonzero(rule.mask(view, params))
            if len(indices) == 0:
                indices = None  # e.g. a dtype failure no single value explains
            else:
                cols = _context_columns(contract, rule)
                sample = tuple(locator.row(int(i), cols) for i in indices[:SAMPLE_SIZE])
                if count is None:
                    count = len(indices)
                    pct = 100.0 * count / n if n else 0.0
        if raised:
            message = (
                f"{all_files}: rule '{rule.name}' ({rule.description}) could not be evaluated: "
                f"{exc.get('exception_message')}"
            )
        elif indices is not None:
            first = sample[0]
            shown = ", ".join(f"{k}={v!r}" for k, v in first.values.items())
            files = name_files(locator.files_of(indices)) or all_files
            message = (
                f"{files}: rule '{rule.name}' ({rule.description}) failed on {count} of {n} "
                f"rows ({pct:.4g}%); first at {first.where()}: {shown}"
            )
        else:
            message = _batch_message(rule, all_files, shape, view, observed)
        results.append(
            RuleResult(
                status=RuleStatus.FAILED,
                unexpected_count=count,
                unexpected_percent=pct,
                observed_value=observed,
                note=message,
                **base,
            )
        )
        failures.append(
            RuleFailure(
                rule=rule.name,
                columns=rule.columns,
                expectation_type=rule.expectation_type,
                policy=rule.policy,
                unexpected_count=count,
                unexpected_percent=pct,
                sample=sample,
                message=message,
                observed_value=observed,
                row_indices=indices,
            )
        )

    if any(f.policy is FailurePolicy.BLOCK for f in failures):
        outcome = Outcome.BLOCKED
    elif failures:
        outcome = Outcome.WARNED
    else:
        outcome = Outcome.PASSED
    return ValidationReport(
        run_id=context.run_id or uuid.uuid4().hex,
        dataset=contract.dataset,
        feed=context.feed,
        logical_date=context.logical_date,
        source_files=tuple(context.source_files),
        success=not failures,
        outcome=outcome,
        rows=n,
        duration_s=time.perf_counter() - started,
        validated_at=dt.datetime.now(dt.UTC),
        results=results,
        failures=failures,
        gx_result=gx_result,
    )
