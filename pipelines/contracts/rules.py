"""A contract flattened to evaluable rules: :class:`CompiledRule` and :func:`compile_rules`.

Each compiled rule knows, without importing Great Expectations:

* the GX expectation type and keyword arguments that check it (runtime values such as the
  logical date are ``$PARAMETER`` references, so one cached suite serves every batch);
* the parameter values for one batch, or why it cannot run (``skip_reason``);
* a cheap pandas mask of its failing rows, used only after GX reports a failure — GX's
  ``SUMMARY`` result gives counts and the first few indices, and asking it for every
  failing index (``COMPLETE``) is far slower than recomputing a vectorised mask.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipelines.contracts.coerce import CANONICAL_DTYPE
from pipelines.contracts.spec import (
    Contract,
    FailurePolicy,
    FiniteRule,
    FreshnessAgeRule,
    FreshnessPublishRule,
    InSetRule,
    ListedRule,
    LogicalType,
    PairOrderRule,
    RangeRule,
    ReferentialRule,
    RowCountChangeRule,
    RowCountRule,
    TradingSessionRule,
)

#: Prefix of helper columns added to the validated view (never part of a vendor file).
HELPER_PREFIX = "__contract_"


@dataclass(frozen=True)
class BatchFacts:
    """What the caller knows about a batch that rules need (see ``ValidationContext``)."""

    logical_date: dt.date
    previous_row_count: int | None = None
    known_security_ids: frozenset[str] | None = None
    expected_publish_time: dt.datetime | None = None
    #: Per-row logical dates (``datetime64[D]``, aligned with the frame) when one frame
    #: holds several deliveries, as a backfill chunk does; ``None`` = ``logical_date``.
    row_logical_dates: np.ndarray | None = None
    #: Per-row knowledge batch labels (aligned with the frame) when one frame holds several
    #: knowledge batches (a backfill chunk: one label per delivered file). Rules that
    #: compare rows with each other compare only rows of the same batch: an original
    #: print and its correction are two versions of one key, not a duplicate.
    #: ``None`` = the whole frame is one batch.
    row_batches: np.ndarray | None = None
    #: Securities delisted as known at the batch's knowledge time: id → the last date
    #: they trade (rows dated after it fail ``listed`` rules).
    delisted: Mapping[str, dt.date] | None = None


@dataclass(frozen=True)
class FrameShape:
    """Which declared columns a frame lacks or holds with the wrong type."""

    missing: frozenset[str] = frozenset()
    mistyped: frozenset[str] = frozenset()
    present_declared: tuple[str, ...] = ()
    #: Helper columns the validator adds (not vendor columns, so never "unexpected").
    helpers: tuple[str, ...] = ()


Mask = Callable[[pd.DataFrame, Mapping[str, Any]], np.ndarray]


@dataclass(frozen=True)
class CompiledRule:
    """One named rule ready to run: its expectation, parameters and failing-row mask."""

    name: str
    kind: str
    columns: tuple[str, ...]
    policy: FailurePolicy
    description: str
    expectation_type: str
    #: Builds the expectation's kwargs for a frame shape (only schema rules look at it).
    kwargs: Callable[[FrameShape], dict[str, Any]]
    #: Parameter values for one batch, or a string saying why the rule cannot run.
    params: Callable[[BatchFacts], dict[str, Any] | str] = field(default=lambda _f: {})
    #: Failing rows of the canonical view; None for batch-level rules.
    mask: Mask | None = None
    #: Columns whose presence and type the rule needs (others: skipped, not failed).
    needs_typed: tuple[str, ...] = ()
    #: Columns whose presence (any type) the rule needs.
    needs_present: tuple[str, ...] = ()
    #: Skip on an empty batch (e.g. a freshness check of ``max(known_at)``).
    needs_rows: bool = False
    #: Helper column the validator adds before GX runs (name → builder).
    helper: tuple[str, Callable[[pd.DataFrame, BatchFacts], pd.Series]] | None = None

    @property
    def row_level(self) -> bool:
        """True when failures can be pinned to rows."""
        return self.mask is not None

    def param_name(self, suffix: str) -> str:
        """The ``$PARAMETER`` name of one of this rule's runtime values."""
        return "p_" + "".join(ch if ch.isalnum() else "_" for ch in self.name) + "_" + suffix

    def ref(self, suffix: str) -> dict[str, str]:
        """A GX ``$PARAMETER`` reference to one of this rule's runtime values."""
        return {"$PARAMETER": self.param_name(suffix)}

    def skip_reason(self, shape: FrameShape, facts: BatchFacts, rows: int) -> str | None:
        """Why the rule cannot be evaluated on this frame/batch, or None."""
        if self.needs_rows and rows == 0:
            return "the batch has no rows"
        for col in self.needs_present + self.needs_typed:
            if col in shape.missing:
                return f"column {col!r} is missing"
        for col in self.needs_typed:
            if col in shape.mistyped:
                return f"column {col!r} does not have its declared type"
        out = self.params(facts)
        return out if isinstance(out, str) else None

    def param_values(self, facts: BatchFacts) -> dict[str, Any]:
        """This rule's ``$PARAMETER`` values for a batch (call only when not skipped)."""
        out = self.params(facts)
        assert not isinstance(out, str), out
        return {self.param_name(k): v for k, v in out.items()}


def _fmt(x: float) -> str:
    return f"{x:g}"


def _not_convertible(logical: LogicalType) -> Callable[[pd.Series], np.ndarray]:
    """Rows whose value cannot be read as ``logical`` (names the rows of a type failure)."""

    def numeric(s: pd.Series) -> np.ndarray:
        parsed = pd.to_numeric(s, errors="coerce")
        return np.asarray(parsed.isna() & s.notna())

    def temporal(s: pd.Series) -> np.ndarray:
        try:
            parsed = pd.to_datetime(s, errors="coerce", utc=logical is LogicalType.TIMESTAMP)
        except (TypeError, ValueError):
            return np.asarray(s.notna())
        return np.asarray(parsed.isna() & s.notna())

    def other(s: pd.Series) -> np.ndarray:
        want: type = str if logical is LogicalType.STRING else bool
        return np.asarray([v is not None and v == v and not isinstance(v, want) for v in s])

    if logical in (LogicalType.FLOAT, LogicalType.INT):
        return numeric
    if logical in (LogicalType.DATE, LogicalType.TIMESTAMP):
        return temporal
    return other


def _const_kwargs(kwargs: dict[str, Any]) -> Callable[[FrameShape], dict[str, Any]]:
    """Expectation kwargs that do not depend on the frame's shape."""

    def build(_shape: FrameShape) -> dict[str, Any]:
        return dict(kwargs)

    return build


def _null_mask(col: str) -> Mask:
    def mask(v: pd.DataFrame, _p: Mapping[str, Any]) -> np.ndarray:
        return np.asarray(v[col].isna())

    return mask


def _type_mask(col: str, logical: LogicalType) -> Mask:
    bad_values = _not_convertible(logical)

    def mask(v: pd.DataFrame, _p: Mapping[str, Any]) -> np.ndarray:
        return bad_values(v[col])

    return mask


def _column_rules(contract: Contract, col: str) -> list[CompiledRule]:
    spec = contract.columns[col]
    canonical = CANONICAL_DTYPE[spec.type]
    rules = [
        CompiledRule(
            name=f"schema.{col}.present",
            kind="column_present",
            columns=(col,),
            policy=contract.rule_policy(f"schema.{col}.present"),
            description=f"column {col!r} is present",
            expectation_type="ExpectColumnToExist",
            kwargs=_const_kwargs({"column": col}),
        ),
        CompiledRule(
            name=f"schema.{col}.type",
            kind="column_type",
            columns=(col,),
            policy=contract.rule_policy(f"schema.{col}.type"),
            description=f"column {col!r} has type {spec.type.value} ({canonical})",
            # ExpectColumnValuesToBeInTypeList does not recognise pandas 3's "str" or
            # tz-aware dtypes; ExpectColumnTypeToBe compares dtype names properly.
            expectation_type="ExpectColumnTypeToBe",
            kwargs=_const_kwargs({"column": col, "type_": canonical}),
            # The GX check is on the dtype; the mask names the rows that make it wrong.
            mask=_type_mask(col, spec.type),
            needs_present=(col,),
        ),
    ]
    if not spec.nullable:
        rules.append(
            CompiledRule(
                name=f"schema.{col}.not_null",
                kind="not_null",
                columns=(col,),
                policy=contract.rule_policy(f"schema.{col}.not_null"),
                description=f"column {col!r} has no nulls",
                expectation_type="ExpectColumnValuesToNotBeNull",
                kwargs=_const_kwargs({"column": col}),
                mask=_null_mask(col),
                needs_present=(col,),
            )
        )
    return rules


def _schema_rules(contract: Contract) -> list[CompiledRule]:
    rules: list[CompiledRule] = []
    for col in contract.columns:
        rules += _column_rules(contract, col)
    if not contract.allow_extra_columns:
        name = "schema.unexpected_columns"
        rules.append(
            CompiledRule(
                name=name,
                kind="unexpected_columns",
                columns=(),
                policy=contract.rule_policy(name),
                description="no columns beyond those declared",
                expectation_type="ExpectTableColumnsToMatchSet",
                # Missing columns are their own rules; here only extras should fail, so the
                # expected set is the declared columns that are actually there.
                kwargs=lambda s: {
                    "column_set": [*s.present_declared, *s.helpers],
                    "exact_match": True,
                },
            )
        )
    if contract.key:
        key = tuple(contract.key)
        name = "key.unique"
        # The key is unique within each knowledge batch (see BatchFacts.row_batches): the
        # batch label is one more key column, constant when the frame is a single batch.
        batch_col = f"{HELPER_PREFIX}key_batch"
        subset = [*key, batch_col]

        def batch_label(v: pd.DataFrame, facts: BatchFacts) -> pd.Series:
            labels = facts.row_batches
            if labels is None or len(labels) != len(v):
                codes = np.zeros(len(v), dtype=np.int64)
            else:
                codes = pd.factorize(np.asarray(labels))[0].astype(np.int64)
            # A row whose key is all null is compared with nothing (as GX's uniqueness
            # expectations ignore it): a label of its own (negative) keeps it unique.
            unkeyed = np.asarray(v[list(key)].isna().all(axis=1))
            codes = np.where(unkeyed, -1 - np.arange(len(v), dtype=np.int64), codes)
            return pd.Series(codes, index=v.index)

        rules.append(
            CompiledRule(
                name=name,
                kind="unique",
                columns=key,
                policy=contract.rule_policy(name),
                description=f"({', '.join(key)}) is unique",
                expectation_type="ExpectCompoundColumnsToBeUnique",
                kwargs=_const_kwargs({"column_list": subset}),
                mask=lambda v, _p: np.asarray(v.duplicated(subset=subset, keep=False)),
                needs_typed=key,
                helper=(batch_col, batch_label),
            )
        )
    return rules


def _range(contract: Contract, r: RangeRule) -> CompiledRule:
    parts = []
    if r.min is not None:
        parts.append(f"{'>' if r.strict_min else '>='} {_fmt(r.min)}")
    if r.max is not None:
        parts.append(f"{'<' if r.strict_max else '<='} {_fmt(r.max)}")

    def mask(v: pd.DataFrame, _p: Mapping[str, Any]) -> np.ndarray:
        s = v[r.column]
        bad = pd.Series(False, index=v.index)
        if r.min is not None:
            bad |= (s <= r.min) if r.strict_min else (s < r.min)
        if r.max is not None:
            bad |= (s >= r.max) if r.strict_max else (s > r.max)
        return np.asarray(bad & s.notna())

    return CompiledRule(
        name=r.name,
        kind=r.kind,
        columns=(r.column,),
        policy=contract.rule_policy(r.name, r.policy),
        description=r.description or f"{r.column} {' and '.join(parts)}",
        expectation_type="ExpectColumnValuesToBeBetween",
        kwargs=lambda _s: {
            "column": r.column,
            "min_value": r.min,
            "max_value": r.max,
            "strict_min": r.strict_min,
            "strict_max": r.strict_max,
        },
        mask=mask,
        needs_typed=(r.column,),
    )


def _pair(contract: Contract, r: PairOrderRule) -> CompiledRule:
    op = ">=" if r.or_equal else ">"

    def mask(v: pd.DataFrame, _p: Mapping[str, Any]) -> np.ndarray:
        a, b = v[r.greater], v[r.lesser]
        ok = (a >= b) if r.or_equal else (a > b)
        return np.asarray(~ok & a.notna() & b.notna())

    return CompiledRule(
        name=r.name,
        kind=r.kind,
        columns=(r.greater, r.lesser),
        policy=contract.rule_policy(r.name, r.policy),
        description=r.description or f"{r.greater} {op} {r.lesser}",
        expectation_type="ExpectColumnPairValuesAToBeGreaterThanB",
        kwargs=lambda _s: {
            "column_A": r.greater,
            "column_B": r.lesser,
            "or_equal": r.or_equal,
            "ignore_row_if": "either_value_is_missing",
        },
        mask=mask,
        needs_typed=(r.greater, r.lesser),
    )


def _in_set(contract: Contract, r: InSetRule) -> CompiledRule:
    shown = ", ".join(map(str, r.values[:12])) + (" …" if len(r.values) > 12 else "")
    return CompiledRule(
        name=r.name,
        kind=r.kind,
        columns=(r.column,),
        policy=contract.rule_policy(r.name, r.policy),
        description=r.description or f"{r.column} in {{{shown}}}",
        expectation_type="ExpectColumnValuesToBeInSet",
        kwargs=lambda _s: {"column": r.column, "value_set": list(r.values)},
        mask=lambda v, _p: np.asarray(~v[r.column].isin(r.values) & v[r.column].notna()),
        needs_typed=(r.column,),
    )


def _true_helper_rule(
    contract: Contract,
    r: Any,
    columns: tuple[str, ...],
    description: str,
    build: Callable[[pd.DataFrame, BatchFacts], pd.Series],
    params: Callable[[BatchFacts], dict[str, Any] | str] = lambda _f: {},
) -> CompiledRule:
    """A row-level rule whose verdict per row is computed once, vectorised, into a helper
    column (``build``: True = the row passes) that GX then checks for ``{True}``; failing
    rows are the helper's False ones."""
    helper = f"{HELPER_PREFIX}{r.name}"
    return CompiledRule(
        name=r.name,
        kind=r.kind,
        columns=columns,
        policy=contract.rule_policy(r.name, r.policy),
        description=r.description or description,
        expectation_type="ExpectColumnValuesToBeInSet",
        kwargs=lambda _s: {"column": helper, "value_set": [True]},
        params=params,
        mask=lambda v, _p: ~np.asarray(v[helper], dtype=bool),
        needs_typed=columns,
        helper=(helper, build),
    )


def _referential(contract: Contract, r: ReferentialRule) -> CompiledRule:
    def build(v: pd.DataFrame, facts: BatchFacts) -> pd.Series:
        ids = facts.known_security_ids or frozenset()
        s = v[r.column]
        # Nulls are the not-null rule's business; here they count as known.
        return s.isin(ids) | s.isna()

    def params(facts: BatchFacts) -> dict[str, Any] | str:
        if facts.known_security_ids is None:
            return f"no known ids of {r.reference} were given"
        return {}

    # GX 1.24 re-serialises an expectation's kwargs dozens of times per run, so a value_set
    # of thousands of ids costs ~1 s per call. Membership is computed once with isin() into
    # a helper column and GX checks that column instead.
    return _true_helper_rule(
        contract,
        r,
        (r.column,),
        f"{r.column} exists in {r.reference} as known then",
        build,
        params,
    )


def _freshness_age(contract: Contract, r: FreshnessAgeRule) -> CompiledRule:
    logical = contract.columns[r.column].type
    if logical not in (LogicalType.DATE, LogicalType.TIMESTAMP):
        raise ValueError(f"rule {r.name}: freshness_age needs a date or timestamp column")
    helper = f"{HELPER_PREFIX}{r.name}"

    def build(v: pd.DataFrame, facts: BatchFacts) -> pd.Series:
        # Calendar days from the logical date (negative = before it). GX compares a
        # datetime column value by value in Python (~5 s per million rows); comparing
        # this numeric offset is vectorised.
        # A chunk of many deliveries compares each row with its own delivery's date.
        origin: Any
        if facts.row_logical_dates is not None and len(facts.row_logical_dates) == len(v):
            origin = pd.Series(
                pd.DatetimeIndex(facts.row_logical_dates.astype("datetime64[ns]")), index=v.index
            )
            if logical is LogicalType.TIMESTAMP:
                origin = origin.dt.tz_localize("UTC")
        else:
            origin = pd.Timestamp(facts.logical_date)
            if logical is LogicalType.TIMESTAMP:
                origin = origin.tz_localize("UTC")
        days = (v[r.column] - origin) / pd.Timedelta(days=1)
        return pd.Series(np.floor(days), index=v.index, dtype="float64")

    def mask(v: pd.DataFrame, _p: Mapping[str, Any]) -> np.ndarray:
        s = v[helper]
        return np.asarray(((s < -r.max_age_days) | (s > r.max_future_days)) & s.notna())

    future = f", at most {r.max_future_days} day(s) after it" if r.max_future_days else ""
    return CompiledRule(
        name=r.name,
        kind=r.kind,
        columns=(r.column,),
        policy=contract.rule_policy(r.name, r.policy),
        description=r.description
        or f"{r.column} at most {r.max_age_days} day(s) before the logical date{future}"
        + ("" if r.max_future_days else " and not after it"),
        expectation_type="ExpectColumnValuesToBeBetween",
        kwargs=lambda _s: {
            "column": helper,
            "min_value": -r.max_age_days,
            "max_value": r.max_future_days,
        },
        mask=mask,
        needs_typed=(r.column,),
        helper=(helper, build),
    )


def _freshness_publish(contract: Contract, r: FreshnessPublishRule) -> CompiledRule:
    def params(facts: BatchFacts) -> dict[str, Any] | str:
        if facts.expected_publish_time is None:
            return "no expected publish time was given"
        pub = pd.Timestamp(facts.expected_publish_time)
        pub = pub.tz_localize("UTC") if pub.tzinfo is None else pub.tz_convert("UTC")
        delta = pd.Timedelta(hours=r.max_hours)
        return {"min": pub - delta, "max": pub + delta}

    rule = CompiledRule(
        name=r.name,
        kind=r.kind,
        columns=(r.column,),
        policy=contract.rule_policy(r.name, r.policy),
        description=r.description
        or f"max({r.column}) within {_fmt(r.max_hours)} h of the expected publish time",
        expectation_type="ExpectColumnMaxToBeBetween",
        kwargs=lambda _s: {},
        params=params,
        needs_typed=(r.column,),
        needs_rows=True,
    )
    return _with_kwargs(
        rule,
        lambda _s: {"column": r.column, "min_value": rule.ref("min"), "max_value": rule.ref("max")},
    )


def _row_count(contract: Contract, r: RowCountRule) -> CompiledRule:
    bounds = [
        f">= {r.min}" if r.min is not None else "",
        f"<= {r.max}" if r.max is not None else "",
    ]
    return CompiledRule(
        name=r.name,
        kind=r.kind,
        columns=(),
        policy=contract.rule_policy(r.name, r.policy),
        description=r.description or f"row count {' and '.join(b for b in bounds if b)}",
        expectation_type="ExpectTableRowCountToBeBetween",
        kwargs=lambda _s: {"min_value": r.min, "max_value": r.max},
    )


def _row_count_change(contract: Contract, r: RowCountChangeRule) -> CompiledRule:
    def params(facts: BatchFacts) -> dict[str, Any] | str:
        prev = facts.previous_row_count
        if prev is None:
            return "no previous row count was given"
        frac = r.max_change_pct / 100.0
        return {"min": math.floor(prev * (1 - frac)), "max": math.ceil(prev * (1 + frac))}

    rule = CompiledRule(
        name=r.name,
        kind=r.kind,
        columns=(),
        policy=contract.rule_policy(r.name, r.policy),
        description=r.description
        or f"row count within ±{_fmt(r.max_change_pct)}% of the previous day's",
        expectation_type="ExpectTableRowCountToBeBetween",
        kwargs=lambda _s: {},
        params=params,
    )
    return _with_kwargs(
        rule, lambda _s: {"min_value": rule.ref("min"), "max_value": rule.ref("max")}
    )


def _finite(contract: Contract, r: FiniteRule) -> CompiledRule:
    # Only a value that is there and not finite fails. The vendor's text is read before
    # coercion, so "inf", "Infinity" and "1e999" all land here as ±inf; a NaN from a cell
    # the feed did not declare a null word for is not finite either.
    def build(v: pd.DataFrame, _facts: BatchFacts) -> pd.Series:
        s = pd.to_numeric(v[r.column], errors="coerce").astype("float64")
        ok = np.isfinite(s.to_numpy()) | v[r.column].isna().to_numpy()
        return pd.Series(ok, index=v.index)

    return _true_helper_rule(contract, r, (r.column,), f"{r.column} is a finite number", build)


def _trading_session(contract: Contract, r: TradingSessionRule) -> CompiledRule:
    from pipelines.timeline import trading_calendar

    def build(v: pd.DataFrame, facts: BatchFacts) -> pd.Series:
        cal = trading_calendar()
        days = pd.to_datetime(v[r.column], errors="coerce")
        if getattr(days.dt, "tz", None) is not None:
            days = days.dt.tz_convert(cal.tz)
        dates = days.dt.date
        sessions = frozenset(cal.days)
        ok = np.asarray([d is None or d != d or d in sessions for d in dates], dtype=bool)
        if r.delivery:
            if facts.row_logical_dates is not None and len(facts.row_logical_dates) == len(v):
                own = pd.DatetimeIndex(facts.row_logical_dates.astype("datetime64[ns]")).date
            else:
                own = np.full(len(v), facts.logical_date, dtype=object)
            same = np.asarray(
                [d is None or d != d or d == o for d, o in zip(dates, own, strict=True)],
                dtype=bool,
            )
            ok &= same
        return pd.Series(ok, index=v.index)

    what = "the delivery's own session" if r.delivery else "a trading session"
    return _true_helper_rule(contract, r, (r.column,), f"{r.column} is {what}", build)


def _listed(contract: Contract, r: ListedRule) -> CompiledRule:
    def build(v: pd.DataFrame, facts: BatchFacts) -> pd.Series:
        delisted = facts.delisted or {}
        if not delisted:
            return pd.Series(True, index=v.index)
        last = v[r.column].map(lambda s: delisted.get(s) if isinstance(s, str) else None)
        last_ts = pd.to_datetime(last, errors="coerce")
        days = pd.to_datetime(v[r.date_column], errors="coerce")
        if getattr(days.dt, "tz", None) is not None:
            days = days.dt.tz_localize(None)
        after = (days > last_ts) & last_ts.notna() & days.notna()
        return pd.Series(~after.to_numpy(), index=v.index)

    def params(facts: BatchFacts) -> dict[str, Any] | str:
        if facts.delisted is None:
            return "no delisting dates were given"
        return {}

    return _true_helper_rule(
        contract,
        r,
        (r.column, r.date_column),
        f"{r.column} is listed on {r.date_column} (not after its delisting)",
        build,
        params,
    )


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)


def _with_kwargs(
    rule: CompiledRule, kwargs: Callable[[FrameShape], dict[str, Any]]
) -> CompiledRule:
    from dataclasses import replace

    return replace(rule, kwargs=kwargs)


_BUILDERS: dict[type, Callable[[Contract, Any], CompiledRule]] = {
    RangeRule: _range,
    FiniteRule: _finite,
    ListedRule: _listed,
    TradingSessionRule: _trading_session,
    PairOrderRule: _pair,
    InSetRule: _in_set,
    ReferentialRule: _referential,
    FreshnessAgeRule: _freshness_age,
    FreshnessPublishRule: _freshness_publish,
    RowCountRule: _row_count,
    RowCountChangeRule: _row_count_change,
}


def compile_rules(contract: Contract) -> list[CompiledRule]:
    """Every rule of ``contract`` (generated schema/key rules first), in report order."""
    return _schema_rules(contract) + [_BUILDERS[type(r)](contract, r) for r in contract.rules]
