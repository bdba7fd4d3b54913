"""Contracts as Great Expectations 1.x suites, and the one GX runtime a process uses.

Great Expectations is imported lazily (it costs ~4-7 s): nothing here touches it until a
suite is built or a frame validated, so DAG files may import this package freely.

Every expectation carries ``meta = {"rule": <rule name>, "contract": <dataset>, ...}`` so a
GX result (and the Data Docs built from it) maps back to the contract rule.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipelines.contracts.rules import CompiledRule, FrameShape, compile_rules
from pipelines.contracts.spec import Contract

if TYPE_CHECKING:
    from great_expectations.core.batch_definition import BatchDefinition
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.data_context import AbstractDataContext


@dataclass
class GxRuntime:
    """An ephemeral GX context with one pandas whole-dataframe batch definition."""

    context: AbstractDataContext
    batch_definition: BatchDefinition


_LOCK = threading.Lock()
_RUNTIME: GxRuntime | None = None
_SUITES: dict[tuple[str, tuple[str, ...], tuple[str, ...]], ExpectationSuite] = {}
_RULES: dict[str, list[CompiledRule]] = {}


def gx_runtime() -> GxRuntime:
    """The process-wide GX runtime, created on first use (reuse it: creation is slow)."""
    global _RUNTIME
    with _LOCK:
        if _RUNTIME is None:
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

            context = gx.get_context(mode="ephemeral")
            # tqdm bars per validation are noise in task logs and cost time.
            context.variables.progress_bars = ProgressBarsConfig(globally=False)
            asset = context.data_sources.add_pandas("contracts").add_dataframe_asset("frame")
            _RUNTIME = GxRuntime(context, asset.add_batch_definition_whole_dataframe("whole"))
        return _RUNTIME


def compiled_rules(contract: Contract) -> list[CompiledRule]:
    """The contract's compiled rules (cached by contract content)."""
    key = contract.fingerprint()
    rules = _RULES.get(key)
    if rules is None:
        rules = _RULES[key] = compile_rules(contract)
    return rules


def _expectation(rule: CompiledRule, contract: Contract, shape: FrameShape) -> Any:
    import great_expectations.expectations as gxe

    cls = getattr(gxe, rule.expectation_type)
    exp = cls(**rule.kwargs(shape))
    exp.meta = {
        "rule": rule.name,
        "contract": contract.dataset,
        "contract_version": contract.version,
        "policy": rule.policy.value,
        "description": rule.description,
    }
    return exp


def build_suite(
    contract: Contract, rules: list[CompiledRule] | None = None, shape: FrameShape | None = None
) -> ExpectationSuite:
    """A GX ``ExpectationSuite`` named after the dataset, one expectation per rule.

    ``rules`` defaults to every rule of the contract and ``shape`` to a frame holding every
    declared column; runtime values stay ``$PARAMETER`` references (see ``rules``).
    """
    import great_expectations as gx

    rules = compiled_rules(contract) if rules is None else rules
    shape = shape or FrameShape(present_declared=tuple(contract.columns))
    suite = gx.ExpectationSuite(name=f"contract.{contract.dataset}")
    suite.meta["contract_version"] = contract.version
    for rule in rules:
        suite.add_expectation(_expectation(rule, contract, shape))
    return suite


def cached_suite(
    contract: Contract, rules: list[CompiledRule], shape: FrameShape
) -> ExpectationSuite:
    """The suite for this subset of rules and frame shape, built once per process.

    Clean batches always hit the same entry; a broken batch (missing or mistyped columns,
    so some rules are skipped) gets its own entry.
    """
    key = (
        contract.fingerprint(),
        tuple(r.name for r in rules),
        shape.present_declared + shape.helpers,
    )
    with _LOCK:
        suite = _SUITES.get(key)
    if suite is None:
        suite = build_suite(contract, rules, shape)
        with _LOCK:
            _SUITES[key] = suite
    return suite
