"""``alphafactory contracts …``: which file each data contract resolves to, and what it says.

Contracts are searched in the ``ALPHAFACTORY_CONTRACT_PATH`` folders, then the shipped
``data_contracts/`` (see :mod:`pipelines.contracts.resolve`); these commands show the
outcome of that search, so a user can check that their override or patch is the one used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from pipelines.contracts import (
    ContractError,
    ContractSource,
    available_contracts,
    contract_search_path,
    load_contract,
    resolve_contract,
)
from pipelines.contracts.spec import CONTRACTS_DIR

contracts_app = typer.Typer(
    help="Data contracts: where each one resolves on the search path, and its effective rules.",
    no_args_is_help=True,
)


def _describe(source: ContractSource) -> str:
    text = str(source.path)
    for base in source.files[1:]:
        text += f" (extends {base})"
    return text


@contracts_app.command("list")
def list_contracts() -> None:
    """Every contract on the search path: dataset -> the file it resolves to.

    Each contract is loaded, so a broken user contract is reported here (exit code 1).
    """
    folders = contract_search_path()
    typer.echo("contract search path (first match wins):")
    for i, folder in enumerate(folders, 1):
        typer.echo(f"  {i}. {folder}" + ("  (shipped)" if folder == CONTRACTS_DIR else ""))
    names = available_contracts(folders)
    width = max((len(n) for n in names), default=0)
    broken = 0
    for name in names:
        try:
            source = resolve_contract(name, folders)
            load_contract(name)
            line = _describe(source)
        except ContractError as exc:
            broken += 1
            line = "error: " + "; ".join(s.strip() for s in str(exc).splitlines() if s.strip())
        typer.echo(f"{name:<{width}}  {line}")
    if broken:
        raise typer.Exit(1)


def _effective(name: str) -> dict[str, Any]:
    body = load_contract(name).model_dump(mode="json")
    # Every field is shown (defaults included: this is what runs), except the empty ones
    # (no description, policy inherited from the contract), which are noise.
    for section in (body["rules"], list(body["columns"].values())):
        for entry in section:
            for key in [k for k, v in entry.items() if v is None or v == ""]:
                del entry[key]
    return body


@contracts_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="dataset name, e.g. corporate_actions")],
) -> None:
    """The effective contract of NAME (patches applied) as YAML, and the files it comes from."""
    source = resolve_contract(name)
    body = _effective(name)
    typer.echo(f"# {name}: {source.path}")
    for base in source.files[1:]:
        typer.echo(f"#   extends {Path(base)}")
    typer.echo(yaml.safe_dump(body, sort_keys=False, width=100).rstrip())
