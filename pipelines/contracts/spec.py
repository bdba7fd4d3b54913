"""What a data contract is: the pydantic models behind ``data_contracts/<dataset>.yaml``.

A contract declares a dataset's schema (column names, logical types, nullability), its key,
and a list of named rules. Schema and key rules are *generated* from the schema with
fixed names (see :func:`schema_rule_names`), so a failure always maps back to a name a
reader can find in the YAML. Every rule has a policy: the contract's ``policy`` unless the
rule (or, for generated rules, ``policy_overrides``) says otherwise.

Loading never half-succeeds: :func:`load_contract_file` either returns a fully checked
:class:`Contract` or raises :class:`ContractError` naming the file and the offending entry.
Contracts are loaded *by name* through :func:`pipelines.contracts.resolve.load_contract`,
which searches the user's contract folders before the shipped ``data_contracts/``.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipelines.errors import AlphaFactoryError

#: The shipped contracts (repo root / data_contracts), always last on the search path.
CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "data_contracts"


class ContractError(AlphaFactoryError, ValueError):
    """A contract file is missing, unparsable, or inconsistent; the message says where."""


class FailurePolicy(StrEnum):
    """What a failing rule does to the batch: ``block`` stops it, ``warn`` lets it through."""

    BLOCK = "block"
    WARN = "warn"


class LogicalType(StrEnum):
    """Column types as the contract speaks them; see :mod:`pipelines.contracts.coerce`."""

    STRING = "string"
    FLOAT = "float"
    INT = "int"
    BOOL = "bool"
    DATE = "date"
    TIMESTAMP = "timestamp"


class _Strict(BaseModel):
    # Unknown keys are almost always typos ("nulable"); refuse them instead of ignoring.
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnSpec(_Strict):
    """One declared column."""

    type: LogicalType
    nullable: bool = True
    description: str = ""


class _RuleBase(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_.]*$", description="unique within the contract")
    description: str = ""
    policy: FailurePolicy | None = None

    def columns(self) -> tuple[str, ...]:
        """Columns the rule reads (it is skipped when one is missing or mistyped)."""
        return ()

    def row_level(self) -> bool:
        """True when the rule judges single rows (so failing rows can be named)."""
        return True


class RangeRule(_RuleBase):
    """``min <= column <= max`` (bounds optional, ``strict_*`` makes them exclusive); nulls pass."""

    kind: Literal["range"]
    column: str
    min: float | None = None
    max: float | None = None
    strict_min: bool = False
    strict_max: bool = False

    @model_validator(mode="after")
    def _some_bound(self) -> RangeRule:
        if self.min is None and self.max is None:
            raise ValueError("a range rule needs min, max or both")
        return self

    def columns(self) -> tuple[str, ...]:
        return (self.column,)


class PairOrderRule(_RuleBase):
    """``greater >= lesser`` (``>`` when ``or_equal`` is false) on every row where both are set."""

    kind: Literal["pair_order"]
    greater: str
    lesser: str
    or_equal: bool = True

    def columns(self) -> tuple[str, ...]:
        return (self.greater, self.lesser)


class InSetRule(_RuleBase):
    """Column values are among ``values``; nulls pass (nullability is a schema rule)."""

    kind: Literal["in_set"]
    column: str
    values: list[str | int | float | bool] = Field(min_length=1)

    def columns(self) -> tuple[str, ...]:
        return (self.column,)


class ReferentialRule(_RuleBase):
    """Every value of ``column`` is a known id of ``reference`` *as known then*.

    The ids come from the caller (``ValidationContext.known_security_ids``); without them
    the rule is skipped, not passed.
    """

    kind: Literal["referential"]
    column: str
    reference: str = "security_master"

    def columns(self) -> tuple[str, ...]:
        return (self.column,)


class FreshnessPublishRule(_RuleBase):
    """``max(column)`` lies within ``max_hours`` of the batch's expected publish time."""

    kind: Literal["freshness_publish"]
    column: str = "known_at"
    max_hours: float = Field(gt=0)

    def columns(self) -> tuple[str, ...]:
        return (self.column,)

    def row_level(self) -> bool:
        return False


class FreshnessAgeRule(_RuleBase):
    """Every value of ``column`` is within ``[logical_date - max_age_days,
    logical_date + max_future_days]`` (a date or timestamp column; calendar days)."""

    kind: Literal["freshness_age"]
    column: str = "valid_date"
    max_age_days: int = Field(ge=0)
    max_future_days: int = Field(default=0, ge=0)

    def columns(self) -> tuple[str, ...]:
        return (self.column,)


class RowCountRule(_RuleBase):
    """Static bounds on the batch's row count."""

    kind: Literal["row_count"]
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)

    def row_level(self) -> bool:
        return False


class RowCountChangeRule(_RuleBase):
    """Row count within ``±max_change_pct`` % of the previous delivered day's count.

    The previous count comes from the caller; without it the rule is skipped.
    """

    kind: Literal["row_count_change"]
    max_change_pct: float = Field(gt=0)

    def row_level(self) -> bool:
        return False


class FiniteRule(_RuleBase):
    """Numbers are finite: ``inf``/``-inf`` (and a ``NaN`` the vendor wrote as a value)
    fail; an empty cell is the not-null rule's business and passes."""

    kind: Literal["finite"]
    column: str

    def columns(self) -> tuple[str, ...]:
        return (self.column,)


class TradingSessionRule(_RuleBase):
    """A date column holds trading sessions of the exchange calendar; with ``delivery``
    it must also be the delivery's own session (a daily file dated the day before, or a
    row dated on a holiday, fails)."""

    kind: Literal["trading_session"]
    column: str
    delivery: bool = False

    def columns(self) -> tuple[str, ...]:
        return (self.column,)


class ListedRule(_RuleBase):
    """A row's security is still listed on the row's date: an id delisted before it (the
    security master's ``listed = false`` version, effective from ``delist_date``) fails.
    The caller gives the delisting dates; without them the rule is skipped."""

    kind: Literal["listed"]
    column: str
    date_column: str = "valid_date"

    def columns(self) -> tuple[str, ...]:
        return (self.column, self.date_column)


Rule = Annotated[
    RangeRule
    | ListedRule
    | FiniteRule
    | TradingSessionRule
    | PairOrderRule
    | InSetRule
    | ReferentialRule
    | FreshnessPublishRule
    | FreshnessAgeRule
    | RowCountRule
    | RowCountChangeRule,
    Field(discriminator="kind"),
]


class Contract(_Strict):
    """A dataset's contract, as loaded from YAML and cross-checked."""

    dataset: str
    version: int = 1
    description: str = ""
    policy: FailurePolicy = FailurePolicy.BLOCK
    columns: dict[str, ColumnSpec] = Field(min_length=1)
    key: list[str] = Field(default_factory=list)
    #: Allow columns the contract does not declare (else ``schema.unexpected_columns`` fails).
    allow_extra_columns: bool = False
    rules: list[Rule] = Field(default_factory=list)
    #: Policies for generated rules (``schema.close.type``, ``key.unique``, ...), by name.
    policy_overrides: dict[str, FailurePolicy] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Contract:
        declared = set(self.columns)
        unknown_key = [c for c in self.key if c not in declared]
        if unknown_key:
            raise ValueError(f"key columns {unknown_key} are not declared in columns")
        seen: set[str] = set(schema_rule_names(self))
        for i, rule in enumerate(self.rules):
            where = f"rules[{i}] ({rule.name})"
            if rule.name in seen:
                raise ValueError(
                    f"{where}: rule name is used twice (or clashes with a generated rule)"
                )
            seen.add(rule.name)
            missing = [c for c in rule.columns() if c not in declared]
            if missing:
                raise ValueError(f"{where}: columns {missing} are not declared in columns")
        generated = set(schema_rule_names(self))
        unknown = sorted(set(self.policy_overrides) - generated)
        if unknown:
            raise ValueError(
                f"policy_overrides names unknown generated rules {unknown}; "
                f"generated rules are: {sorted(generated)}"
            )
        return self

    def rule_policy(self, name: str, own: FailurePolicy | None = None) -> FailurePolicy:
        """The policy a rule runs under: its own, else an override, else the contract's."""
        if own is not None:
            return own
        return self.policy_overrides.get(name, self.policy)

    def fingerprint(self) -> str:
        """A stable digest of the contract's content (keys the compiled-suite cache)."""
        import hashlib
        import json

        return hashlib.sha256(
            json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        ).hexdigest()[:16]


def schema_rule_names(contract: Contract) -> list[str]:
    """Names of the rules generated from the schema and key, in evaluation order.

    ``schema.<col>.present``, ``schema.<col>.type``, ``schema.<col>.not_null`` (non-nullable
    columns only), ``schema.unexpected_columns`` (unless extra columns are allowed) and
    ``key.unique`` (when a key is declared).
    """
    names: list[str] = []
    for col, spec in contract.columns.items():
        names += [f"schema.{col}.present", f"schema.{col}.type"]
        if not spec.nullable:
            names.append(f"schema.{col}.not_null")
    if not contract.allow_extra_columns:
        names.append("schema.unexpected_columns")
    if contract.key:
        names.append("key.unique")
    return names


def _format_validation_error(source: str, exc: ValidationError, raw: Any) -> str:
    lines = [f"{source}: invalid data contract ({exc.error_count()} problem(s))"]
    for err in exc.errors():
        loc = list(err["loc"])
        # Discriminated-union locations carry the kind as a segment; name the rule instead.
        path = ""
        node: Any = raw
        for part in loc:
            if isinstance(part, int):
                path += f"[{part}]"
                node = node[part] if isinstance(node, list) and part < len(node) else None
                if isinstance(node, dict) and "name" in node:
                    path += f" ({node['name']})"
            else:
                if isinstance(node, dict) and part in node:
                    node = node[part]
                    path += f".{part}" if path else str(part)
                elif not isinstance(node, dict) or part not in (
                    "range",
                    "pair_order",
                    "in_set",
                    "referential",
                    "freshness_publish",
                    "freshness_age",
                    "row_count",
                    "row_count_change",
                ):
                    path += f".{part}" if path else str(part)
        lines.append(f"  - {path or 'contract'}: {err['msg']}")
    return "\n".join(lines)


def parse_contract(data: Any, source: str = "<contract>") -> Contract:
    """A checked :class:`Contract` from already-parsed YAML, or :class:`ContractError`."""
    if not isinstance(data, dict):
        raise ContractError(
            f"{source}: a contract must be a YAML mapping, got {type(data).__name__}"
        )
    try:
        return Contract.model_validate(data)
    except ValidationError as exc:
        raise ContractError(_format_validation_error(source, exc, data)) from None


def load_contract_file(path: str | Path) -> Contract:
    """Load and check one complete contract file (not a patch); raise :class:`ContractError`
    saying what is wrong."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ContractError(f"{path}: cannot read contract: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ContractError(f"{path}: not valid YAML: {exc}") from None
    if isinstance(data, dict) and "extends" in data:
        # A patch is only meaningful against the search path it extends along.
        raise ContractError(
            f"{path}: a contract patch (extends {data['extends']!r}); load it by name "
            "with load_contract, which resolves what it extends on the contract search path"
        )
    contract = parse_contract(data, str(path))
    if contract.dataset != path.stem:
        raise ContractError(
            f"{path}: dataset {contract.dataset!r} does not match the file name {path.stem!r}"
        )
    return contract
