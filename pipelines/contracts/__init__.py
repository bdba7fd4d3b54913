"""Data contracts: YAML rules for vendor datasets, compiled to Great Expectations 1.x suites
and run as the gate between raw vendor files and the lake's silver tables.

Importing this package does not import Great Expectations (it is loaded on first use).
"""

from pipelines.contracts.report import (
    FailingRow,
    Outcome,
    RuleFailure,
    RuleResult,
    RuleStatus,
    ValidationReport,
)
from pipelines.contracts.spec import (
    Contract,
    ContractError,
    FailurePolicy,
    load_contract,
    load_contract_file,
    parse_contract,
)
from pipelines.contracts.validate import RowOrigin, ValidationContext, validate_frame

__all__ = [
    "Contract",
    "ContractError",
    "FailingRow",
    "FailurePolicy",
    "Outcome",
    "RowOrigin",
    "RuleFailure",
    "RuleResult",
    "RuleStatus",
    "ValidationContext",
    "ValidationReport",
    "load_contract",
    "load_contract_file",
    "parse_contract",
    "validate_frame",
]
