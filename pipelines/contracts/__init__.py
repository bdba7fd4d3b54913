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
from pipelines.contracts.resolve import (
    ContractSource,
    available_contracts,
    contract_search_path,
    load_contract,
    resolve_contract,
)
from pipelines.contracts.spec import (
    Contract,
    ContractError,
    FailurePolicy,
    load_contract_file,
    parse_contract,
)
from pipelines.contracts.validate import RowOrigin, ValidationContext, validate_frame

__all__ = [
    "Contract",
    "ContractError",
    "ContractSource",
    "FailingRow",
    "FailurePolicy",
    "Outcome",
    "RowOrigin",
    "RuleFailure",
    "RuleResult",
    "RuleStatus",
    "ValidationContext",
    "ValidationReport",
    "available_contracts",
    "contract_search_path",
    "load_contract",
    "load_contract_file",
    "parse_contract",
    "resolve_contract",
    "validate_frame",
]
