"""The infeasible day's diagnosis loosens each group to a value no portfolio reaches but
the solver can still scale: "no gross cap" is the gross the per-name bound allows."""

from __future__ import annotations

import pytest

from pipelines.portfolio.policy import Policy
from pipelines.report.diagnosis import loosened_policies

pytestmark = pytest.mark.unit


def test_no_cap_is_the_gross_the_per_name_bound_allows() -> None:
    policy = Policy(name="diagnosis", gross_leverage=1.5, max_position=0.02)
    loosened = {group: p for group, _, p in loosened_policies(policy, names=300)}
    # 300 names at 2% each: a gross of 6 is the most any book can hold
    assert loosened["gross leverage"].gross_leverage == pytest.approx(6.0)
    net = loosened["net_exposure"].net_exposure
    assert (net.lo, net.hi) == (pytest.approx(-6.0), pytest.approx(6.0))
    # every other group keeps the declared gross
    assert loosened["max position"].gross_leverage == 1.5
    # a few names: never tighter than the declared cap
    few = {group: p for group, _, p in loosened_policies(policy, names=3)}
    assert few["gross leverage"].gross_leverage == pytest.approx(1.5)
