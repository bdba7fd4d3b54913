"""Issue 18: the PM report's execution wording and the approval screen's link to it."""

from __future__ import annotations

import pytest

from pipelines.report.pm import execution_line, pm_report_markdown, pm_report_url
from pipelines.report.render import bps, pct

pytestmark = pytest.mark.unit


def test_a_rerun_says_already_at_broker_not_sent_zero() -> None:
    rerun = {"submitted": 0, "already_at_broker": 133, "blocked": 0, "rejected_pretrade": 0}
    assert execution_line(rerun) == "sent 0 · already at broker 133 · blocked 0"
    first = {"submitted": 120, "already_at_broker": 0, "blocked": 13, "rejected_broker": 2}
    assert execution_line(first) == (
        "sent 120 · already at broker 0 · blocked 13 · rejected by the broker 2"
    )
    assert execution_line({"sent": 0, "reason": "not approved"}) == (
        "sent 0 · already at broker 0 · blocked 0 — nothing sent: not approved"
    )
    assert execution_line(None).startswith("not run yet")


def test_the_approval_screen_links_the_report(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALPHAFACTORY_REPORTS_URL", raising=False)
    local = "/srv/af lake/reports/pm-report-main-2024-06-05.html"
    assert pm_report_url(local) == "file:///srv/af%20lake/reports/pm-report-main-2024-06-05.html"
    assert pm_report_markdown(local) == (
        "[Open the PM report](file:///srv/af%20lake/reports/pm-report-main-2024-06-05.html)"
        f" — `{local}`"
    )
    s3 = "s3://lake/reports/pm-report-main-2024-06-05.html"
    assert pm_report_url(s3) is None
    assert "ALPHAFACTORY_REPORTS_URL" in pm_report_markdown(s3)
    monkeypatch.setenv("ALPHAFACTORY_REPORTS_URL", "https://reports.example/pm/")
    assert pm_report_markdown(s3).startswith(
        "[Open the PM report](https://reports.example/pm/pm-report-main-2024-06-05.html)"
    )


def test_weights_read_in_percent_and_basis_points() -> None:
    assert pct(0.00006619, 3) == "0.007%"
    assert bps(0.00006619) == "0.7 bp"
    assert bps(-0.0123, 1) == "-123.0 bp"
