"""User data contracts: the ``ALPHAFACTORY_CONTRACT_PATH`` search path, same-name overrides
and ``extends`` patches (issue 13).

The case behind it: a special dividend announced 118 days ahead of its ex-date failed the
shipped 90-day ``ex_date_window`` rule and quarantined the whole file, a valid regular
dividend with it. The gate tests run the vendor file through the same parse and
:func:`contract_gate` calls as ingestion.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
from pathlib import Path

import pytest

from pipelines.config import get_settings
from pipelines.contracts import (
    ContractError,
    contract_search_path,
    load_contract,
    load_contract_file,
    resolve_contract,
)
from pipelines.contracts.spec import CONTRACTS_DIR, FreshnessAgeRule
from pipelines.ingest.feed_spec import load_feeds
from pipelines.ingest.gate import GateContext, GateResult, contract_gate
from pipelines.ingest.parse import parse_file

pytestmark = pytest.mark.unit

DAY = dt.date(2024, 3, 5)
FILE = "corporate_actions.csv.gz"
#: Raise the shipped 90-day ex-date window to 180 days, nothing else.
WIDER_WINDOW = """\
extends: corporate_actions
rules:
  - name: ex_date_window
    max_future_days: 180
    description: ex-date from the logical date up to 180 days after it (special dividends)
"""


def use_contract_path(monkeypatch: pytest.MonkeyPatch, *folders: Path) -> None:
    """Point ALPHAFACTORY_CONTRACT_PATH at ``folders`` (conftest restores the environment)."""
    monkeypatch.setenv("ALPHAFACTORY_CONTRACT_PATH", os.pathsep.join(map(str, folders)))
    get_settings.cache_clear()


def user_folder(root: Path, name: str, **files: str) -> Path:
    """A contract folder ``root/name`` holding ``<stem>.yaml`` files with the given texts."""
    folder = root / name
    folder.mkdir()
    for stem, text in files.items():
        (folder / f"{stem}.yaml").write_text(text)
    return folder


def ex_date_window(dataset: str = "corporate_actions") -> FreshnessAgeRule:
    (rule,) = [r for r in load_contract(dataset).rules if r.name == "ex_date_window"]
    assert isinstance(rule, FreshnessAgeRule)
    return rule


def dividend_file() -> bytes:
    """The vendor's file for DAY: a regular dividend (ex-date in 20 days) and a special one
    announced 118 days ahead of its ex-date, both announced on DAY."""
    header = "ACTION_ID,SECID,TICKER,ACTION_TYPE,ANNOUNCE_DATE,EX_DATE,PAY_DATE,SPLIT_TO,SPLIT_FROM,DIV_AMOUNT,CRNCY"
    rows = [
        ("A1", "S000001", "AAA", DAY + dt.timedelta(days=20), 0.25),
        ("A2", "S000002", "BBB", DAY + dt.timedelta(days=118), 5.00),
    ]
    lines = [header] + [
        f"{aid},{sid},{tic},CASH_DIVIDEND,{DAY},{ex},{ex + dt.timedelta(days=14)},,,{amt},USD"
        for aid, sid, tic, ex, amt in rows
    ]
    return gzip.compress(("\n".join(lines) + "\n").encode())


def gate_dividends() -> GateResult:
    """The dividend file through ingestion's own parse and contract gate."""
    feed = load_feeds()["vendor_corporate_actions"]
    batch = parse_file(feed, FILE, dividend_file())
    assert batch.rows == 2 and not [
        i for i in batch.issues if i.rule != "mapping.unexpected_column"
    ]
    ctx = GateContext(
        feed=feed.name,
        logical_date=DAY,
        file_names=(FILE,),
        published_at=dt.datetime(2024, 3, 5, 22, 0, tzinfo=dt.UTC),
        known_security_ids=frozenset({"S000001", "S000002"}),
    )
    return contract_gate(feed, batch, ctx)


def test_without_user_contract_special_dividend_quarantines_the_file() -> None:
    result = gate_dividends()
    assert result.outcome == "blocked"
    assert result.rules == ["ex_date_window"]
    # Only the special dividend breaks the rule, but a blocked batch is held back whole.
    assert result.failed_rows.tolist() == [1]
    assert "S000002" in result.message


def test_extends_raises_the_window_and_the_batch_passes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    folder = user_folder(tmp_path, "mine", corporate_actions=WIDER_WINDOW)
    use_contract_path(monkeypatch, folder)

    result = gate_dividends()

    assert result.outcome in ("passed", "warned"), result.message
    assert "ex_date_window" not in result.rules
    window = {r["rule"]: r for r in result.result_rows}["ex_date_window"]
    assert window["success"] and not window["skipped"]
    # Only the patched fields changed; every other rule is the shipped one.
    shipped = load_contract_file(CONTRACTS_DIR / "corporate_actions.yaml")
    patched = load_contract("corporate_actions")
    assert ex_date_window().max_future_days == 180 and ex_date_window().max_age_days == 0
    assert [r.name for r in patched.rules] == [r.name for r in shipped.rules]
    assert [r for r in patched.rules if r.name != "ex_date_window"] == [
        r for r in shipped.rules if r.name != "ex_date_window"
    ]
    assert resolve_contract("corporate_actions").files == (
        folder.resolve() / "corporate_actions.yaml",
        CONTRACTS_DIR / "corporate_actions.yaml",
    )


def test_same_name_complete_contract_overrides_the_shipped_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    shipped = (CONTRACTS_DIR / "corporate_actions.yaml").read_text()
    assert "max_future_days: 90" in shipped
    own = shipped.replace("max_future_days: 90", "max_future_days: 150").replace(
        "version: 1", "version: 7"
    )
    folder = user_folder(tmp_path, "mine", corporate_actions=own)
    use_contract_path(monkeypatch, folder)

    contract = load_contract("corporate_actions")
    assert contract.version == 7 and ex_date_window().max_future_days == 150
    assert resolve_contract("corporate_actions").files == (
        folder.resolve() / "corporate_actions.yaml",
    )
    assert gate_dividends().outcome != "blocked"
    # Datasets the user did not declare still come from the shipped folder.
    assert resolve_contract("prices").path == CONTRACTS_DIR / "prices.yaml"


def test_load_contract_follows_the_setting_not_a_stale_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert ex_date_window().max_future_days == 90  # cached with the shipped file
    use_contract_path(monkeypatch, user_folder(tmp_path, "mine", corporate_actions=WIDER_WINDOW))
    assert ex_date_window().max_future_days == 180
    monkeypatch.delenv("ALPHAFACTORY_CONTRACT_PATH")
    get_settings.cache_clear()
    assert ex_date_window().max_future_days == 90


def test_search_path_order_user_folders_first_shipped_last(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first = user_folder(tmp_path, "first", corporate_actions=WIDER_WINDOW)
    second = user_folder(
        tmp_path,
        "second",
        corporate_actions="extends: corporate_actions\n"
        "rules: [{name: ex_date_window, max_future_days: 120, max_age_days: 3}]\n",
    )
    # The shipped folder named explicitly is still searched once, last.
    use_contract_path(monkeypatch, first, CONTRACTS_DIR, second)
    assert contract_search_path() == (first.resolve(), second.resolve(), CONTRACTS_DIR)

    # first extends second, which extends the shipped one: later patches win field by field.
    source = resolve_contract("corporate_actions")
    assert [p.parent for p in source.files] == [first.resolve(), second.resolve(), CONTRACTS_DIR]
    rule = ex_date_window()
    assert (rule.max_future_days, rule.max_age_days) == (180, 3)

    use_contract_path(monkeypatch, second, first)
    rule = ex_date_window()
    assert (rule.max_future_days, rule.max_age_days) == (120, 3)

    use_contract_path(monkeypatch, tmp_path / "no_such_folder")
    with pytest.raises(ContractError, match=r"no_such_folder.*not a directory"):
        load_contract("corporate_actions")


def test_patch_removes_adds_and_merges(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    patch = """\
extends: corporate_actions
remove_rules: [published_on_time]
rules:
  - {name: amount_small, kind: range, column: amount, max: 1000}
  - {name: currency_allowed, values: [USD, EUR], policy: warn}
  - {name: ratio_positive, kind: in_set, column: ratio, values: [0.5, 2.0]}
policy_overrides:
  key.unique: warn
"""
    use_contract_path(monkeypatch, user_folder(tmp_path, "mine", corporate_actions=patch))
    contract = load_contract("corporate_actions")
    names = [r.name for r in contract.rules]
    assert "published_on_time" not in names and names[-1] == "amount_small"
    currency = {r.name: r for r in contract.rules}["currency_allowed"]
    assert currency.model_dump()["values"] == ["USD", "EUR"]
    assert currency.policy == "warn"
    assert contract.policy_overrides == {"schema.unexpected_columns": "warn", "key.unique": "warn"}
    # Another kind: the entry is the whole new rule, in the old rule's place.
    ratio = contract.rules[names.index("ratio_positive")]
    assert ratio.kind == "in_set" and names.index("ratio_positive") == 1


def test_extends_another_name_declares_a_new_dataset(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    folder = user_folder(tmp_path, "acme", acme_corporate_actions=WIDER_WINDOW)
    use_contract_path(monkeypatch, folder)
    contract = load_contract("acme_corporate_actions")
    assert contract.dataset == "acme_corporate_actions"
    assert ex_date_window("acme_corporate_actions").max_future_days == 180
    assert ex_date_window("corporate_actions").max_future_days == 90


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A patch entry naming no existing rule and giving no kind: a typo, not a new rule.
        (
            "extends: corporate_actions\nrules: [{name: ex_date_windw, max_future_days: 180}]\n",
            r"corporate_actions\.yaml: rules\[0\] \(ex_date_windw\): no rule 'ex_date_windw'",
        ),
        (
            "extends: corporate_actions\nrules: [{name: ex_date_window, max_futur_days: 180}]\n",
            r"(?s)corporate_actions\.yaml.*ex_date_window.*max_futur_days.*not permitted",
        ),
        (
            "extends: corporate_actions\nrules: [{name: ex_date_window, max_future_days: -1}]\n",
            r"(?s)corporate_actions\.yaml.*ex_date_window.*max_future_days",
        ),
        (
            "extends: corporate_actions\nremove_rules: [no_such_rule]\n",
            r"corporate_actions\.yaml: remove_rules: no rule 'no_such_rule'",
        ),
        (
            "extends: corporate_actions\nrule: []\n",
            r"corporate_actions\.yaml: unknown keys \['rule'\]",
        ),
        (
            "extends: corporate_actions\nremove_rules: [ex_date_window]\n"
            "rules: [{name: ex_date_window, max_future_days: 180}]\n",
            r"ex_date_window.*also in remove_rules",
        ),
        (
            "extends: corporate_actions\ncolumns: {fx_rate: {nullable: true}}\n",
            r"(?s)corporate_actions\.yaml.*columns\.fx_rate\.type: Field required",
        ),
        (
            "extends: corporate_acts\n",
            r"corporate_actions\.yaml: extends 'corporate_acts', but there is no corporate_acts",
        ),
    ],
    ids=[
        "unknown-rule",
        "unknown-field",
        "invalid-value",
        "unknown-removal",
        "unknown-key",
        "removed-and-changed",
        "new-column-without-type",
        "unknown-base",
    ],
)
def test_bad_patch_is_refused_naming_file_and_rule(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str, expected: str
) -> None:
    use_contract_path(monkeypatch, user_folder(tmp_path, "mine", corporate_actions=text))
    with pytest.raises(ContractError, match=expected) as err:
        load_contract("corporate_actions")
    assert str(tmp_path) in str(err.value)


def test_patches_extending_each_other_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    folder = user_folder(tmp_path, "mine", a="extends: b\n", b="extends: a\n")
    use_contract_path(monkeypatch, folder)
    with pytest.raises(ContractError, match="cycle"):
        load_contract("a")
    # A patch read on its own has nothing to extend: the error says how to load it.
    with pytest.raises(ContractError, match="load it by name"):
        load_contract_file(folder / "a.yaml")


def test_readme_patch_example_loads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The patch shown in data_contracts/README.md ("Your own contracts") is valid."""
    readme = (CONTRACTS_DIR / "README.md").read_text()
    example = readme.split("## Your own contracts", 1)[1].split("```yaml\n", 1)[1]
    example = example.split("```", 1)[0]
    columns = "columns: {amount: {nullable: false}}\n"
    use_contract_path(
        monkeypatch, user_folder(tmp_path, "mine", corporate_actions=example + columns)
    )
    contract = load_contract("corporate_actions")
    assert ex_date_window().max_future_days == 180
    names = [r.name for r in contract.rules]
    assert "published_on_time" not in names and names[-1] == "amount_below_1000"
    assert contract.policy_overrides["key.unique"] == "warn"
    assert contract.columns["amount"].nullable is False
    assert contract.columns["amount"].description == "dividend per share"
