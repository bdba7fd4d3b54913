"""``load_policy`` parses a file's text once yet hands every caller its own policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.portfolio.policy import load_policy

pytestmark = pytest.mark.unit


def test_each_load_is_a_fresh_policy_of_the_current_text(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("name: p\nno_trade: [A]\nfactor_bounds: {size: {lo: -1, hi: 1}}\n")
    first = load_policy(path)
    first.no_trade.append("B")
    first.factor_bounds.clear()
    again = load_policy(path)
    assert again.no_trade == ["A"] and set(again.factor_bounds) == {"size"}
    path.write_text("name: p\nno_trade: [C]\n")
    assert load_policy(path).no_trade == ["C"]


def test_shipped_policy_by_name() -> None:
    assert load_policy("default").name == load_policy("default").name
