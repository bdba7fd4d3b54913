"""Where a dataset's contract comes from: the contract search path, overrides and patches.

Contracts are looked up by dataset name in a *search path* of folders: the user's folders
(setting ``contract_path``, environment ``ALPHAFACTORY_CONTRACT_PATH``, ``os.pathsep``-
separated) in order, then the shipped ``data_contracts/``, always last. The first
``<dataset>.yaml`` found is the dataset's contract file. It is either

* a complete contract (as in ``data_contracts/``): it replaces any contract of the same name
  further down the path, or
* a *patch*: a mapping with ``extends: <name>``. The patch applies to the contract ``<name>``
  as resolved from the folders *after* the patch's own folder when ``<name>`` is the patch's
  own name (a user's ``corporate_actions.yaml`` extending the shipped one), or from the whole
  path when it is another name (a new vendor's dataset extending a shipped shape).

A patch may set ``version``, ``description``, ``policy``, ``allow_extra_columns`` and ``key``
(replaced); ``columns`` and ``policy_overrides`` (merged by name); ``remove_rules`` (names of
rules to drop); and ``rules``: an entry whose ``name`` is a rule of the base contract replaces
that rule's fields (a different ``kind`` replaces the rule whole), any other entry is a new
rule and needs a ``kind``. Anything else is refused with a :class:`ContractError` naming the
file and the entry, as is a patch whose result is not a valid contract.

Every contract load of the project (the ingestion gate, :func:`validate_frame` given a name,
the CLI, the benchmarks) goes through :func:`load_contract`, so they all see the same file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import yaml

from pipelines.contracts.spec import (
    CONTRACTS_DIR,
    Contract,
    ContractError,
    load_contract_file,
    parse_contract,
)

#: Keys a patch (a contract file with ``extends``) may hold.
PATCH_KEYS = frozenset(
    {
        "extends",
        "dataset",
        "version",
        "description",
        "policy",
        "allow_extra_columns",
        "key",
        "columns",
        "policy_overrides",
        "remove_rules",
        "rules",
    }
)


@dataclass(frozen=True)
class ContractSource:
    """The files a dataset's contract is made of, as resolved on the search path."""

    dataset: str
    #: The dataset's own file first, then the file each one extends; the last is complete.
    files: tuple[Path, ...]

    @property
    def path(self) -> Path:
        """The file the dataset resolves to (a complete contract or a patch)."""
        return self.files[0]


def contract_search_path(contract_path: str | None = None) -> tuple[Path, ...]:
    """The folders searched for contracts, first match wins: the user's, then the shipped.

    ``contract_path`` (``os.pathsep``-separated folders) defaults to the ``contract_path``
    setting. Folders are made absolute; the shipped ``data_contracts/`` is always last and
    appears once. A user folder that does not exist raises :class:`ContractError`: a typo
    there would otherwise silently validate against the shipped contracts.
    """
    if contract_path is None:
        # Imported here: DAG files import this package, settings are loaded on first use.
        from pipelines.config import get_settings

        contract_path = get_settings().contract_path
    folders: list[Path] = []
    for entry in contract_path.split(os.pathsep):
        if not entry.strip():
            continue
        folder = Path(entry).expanduser().resolve()
        if not folder.is_dir():
            raise ContractError(
                f"contract folder {entry!r} (ALPHAFACTORY_CONTRACT_PATH) is not a directory"
            )
        if folder != CONTRACTS_DIR and folder not in folders:
            folders.append(folder)
    return (*folders, CONTRACTS_DIR)


@lru_cache(maxsize=256)
def _read_yaml(path: str, mtime_ns: int) -> Any:
    # Keyed by modification time: an edited file is read again, an unchanged one once.
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ContractError(f"{path}: cannot read contract: {exc.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ContractError(f"{path}: not valid YAML: {exc}") from None


def _read(path: Path) -> Any:
    return _read_yaml(str(path), path.stat().st_mtime_ns)


def _find(name: str, folders: tuple[Path, ...], start: int = 0) -> tuple[int, Path] | None:
    for i in range(start, len(folders)):
        candidate = folders[i] / f"{name}.yaml"
        if candidate.is_file():
            return i, candidate
    return None


def _extends(path: Path) -> str | None:
    data = _read(path)
    if not isinstance(data, dict) or "extends" not in data:
        return None
    target = data["extends"]
    if not isinstance(target, str) or not target:
        raise ContractError(f"{path}: extends must be a contract name, got {target!r}")
    return target


def available_contracts(search_path: tuple[Path, ...] | None = None) -> list[str]:
    """Every dataset name with a contract file somewhere on the search path, sorted."""
    folders = contract_search_path() if search_path is None else search_path
    return sorted({p.stem for folder in folders for p in folder.glob("*.yaml")})


def resolve_contract(dataset: str, search_path: tuple[Path, ...] | None = None) -> ContractSource:
    """The files ``dataset``'s contract is made of: its own file, then what it extends.

    ``search_path`` defaults to :func:`contract_search_path`. Raises :class:`ContractError`
    when no file has that name, when an ``extends`` target is not found further down the
    path, or when patches extend each other in a cycle.
    """
    folders = contract_search_path() if search_path is None else search_path
    found = _find(dataset, folders)
    if found is None:
        where = os.pathsep.join(map(str, folders))
        raise ContractError(
            f"no contract for dataset {dataset!r} in the contract search path {where}; "
            f"known: {available_contracts(folders)}"
        )
    chain = [found]
    while (target := _extends(chain[-1][1])) is not None:
        index, path = chain[-1]
        # A file extending its own name means "the one I shadow": search below my folder.
        start = index + 1 if target == path.stem else 0
        nxt = _find(target, folders, start)
        if nxt is None:
            rest = os.pathsep.join(map(str, folders[start:]))
            raise ContractError(
                f"{path}: extends {target!r}, but there is no {target}.yaml in {rest}"
            )
        if nxt[1] in (p for _, p in chain):
            cycle = " -> ".join(str(p) for _, p in [*chain, nxt])
            raise ContractError(f"{path}: contracts extend each other in a cycle: {cycle}")
        chain.append(nxt)
    return ContractSource(dataset, tuple(p for _, p in chain))


def load_contract(dataset: str, contract_path: str | None = None) -> Contract:
    """The effective contract of ``dataset``, resolved on the contract search path.

    ``contract_path`` replaces the ``contract_path`` setting (the shipped folder is still
    searched last). Returns a fully checked :class:`Contract` (patches applied) or raises
    :class:`ContractError` naming the file and the offending entry. Cached per process by
    the resolved files and their modification times, so a changed setting or an edited file
    is seen by the next call.
    """
    source = resolve_contract(dataset, contract_search_path(contract_path))
    return _build(tuple((str(p), p.stat().st_mtime_ns) for p in source.files))


@cache
def _build(files: tuple[tuple[str, int], ...]) -> Contract:
    *patches, (base_path, _) = files
    contract = load_contract_file(base_path)
    for path, _mtime in reversed(patches):
        contract = apply_patch(contract, _read(Path(path)), Path(path))
    return contract


def _rule_patch_error(path: Path, i: int, entry: Any, message: str) -> ContractError:
    name = entry.get("name") if isinstance(entry, dict) else None
    label = f"rules[{i}]" + (f" ({name})" if name else "")
    return ContractError(f"{path}: {label}: {message}")


def apply_patch(base: Contract, patch: Any, path: Path) -> Contract:
    """``base`` with the patch read from ``path`` applied (see the module docstring).

    The result is named after ``path`` and checked like any contract; every problem raises
    :class:`ContractError` naming ``path`` and the entry.
    """
    if not isinstance(patch, dict):
        raise ContractError(f"{path}: a contract must be a YAML mapping")
    unknown = sorted(set(patch) - PATCH_KEYS)
    if unknown:
        raise ContractError(
            f"{path}: unknown keys {unknown} in a contract patch; allowed: {sorted(PATCH_KEYS)}"
        )
    if patch.get("dataset", path.stem) != path.stem:
        raise ContractError(
            f"{path}: dataset {patch['dataset']!r} does not match the file name {path.stem!r}"
        )
    data = base.model_dump(mode="json")
    data["dataset"] = path.stem
    for field in ("version", "description", "policy", "allow_extra_columns", "key"):
        if field in patch:
            data[field] = patch[field]
    for field in ("columns", "policy_overrides"):
        entries = patch.get(field) or {}
        if not isinstance(entries, dict):
            raise ContractError(f"{path}: {field} must be a mapping by name")
        for name, value in entries.items():
            old = data[field].get(name)
            # A column entry changes the given fields of a declared column ({nullable: true}).
            if field == "columns" and isinstance(old, dict) and isinstance(value, dict):
                value = {**old, **value}
            data[field][name] = value

    rules: dict[str, dict[str, Any]] = {r["name"]: r for r in data["rules"]}
    removals = patch.get("remove_rules") or []
    if not isinstance(removals, list):
        raise ContractError(f"{path}: remove_rules must be a list of rule names")
    for name in removals:
        if name not in rules:
            raise ContractError(
                f"{path}: remove_rules: no rule {name!r} in {base.dataset!r} to remove; "
                f"its rules are {sorted(rules)}"
            )
        del rules[name]
    entries = patch.get("rules") or []
    if not isinstance(entries, list):
        raise ContractError(f"{path}: rules must be a list")
    changed: set[str] = set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise _rule_patch_error(path, i, entry, "a rule entry needs a name")
        name = entry["name"]
        if name in changed:
            raise _rule_patch_error(path, i, entry, "the rule is given twice in this patch")
        changed.add(name)
        if name in removals:
            raise _rule_patch_error(path, i, entry, "the rule is also in remove_rules")
        old = rules.get(name)
        if old is None:
            if "kind" not in entry:
                raise _rule_patch_error(
                    path,
                    i,
                    entry,
                    f"no rule {name!r} in {base.dataset!r} to change (a new rule needs a "
                    f"kind); its rules are {sorted(rules)}",
                )
            rules[name] = dict(entry)
        elif entry.get("kind", old["kind"]) != old["kind"]:
            rules[name] = dict(entry)  # another kind: the entry is the whole new rule
        else:
            rules[name] = {**old, **entry}
    data["rules"] = list(rules.values())
    return parse_contract(data, f"{path} (extending {base.dataset!r})")
