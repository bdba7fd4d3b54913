"""Under Airflow, production's stages run under what rollout promoted to full: the
``portfolio_rebalance`` tasks resolve the session's config through
:func:`pipelines.rollout.tasks.production_config` (a promoted policy replaces the file's)."""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines.daily import tasks as daily_tasks
from pipelines.daily.config import DailyConfig
from pipelines.rollout import events as ev
from pipelines.rollout import tasks
from pipelines.rollout.config import RolloutConfig

pytestmark = pytest.mark.unit

DAY = dt.date(2024, 5, 20)


def _candidate(stage: str) -> ev.Candidate:
    return ev.Candidate(
        candidate_id="faster", portfolio_id="main", kind="policy", ref="long_only",
        stage=stage, stage_since=DAY - dt.timedelta(days=3), config=RolloutConfig(),
        canary_capital=None, previous_champion=None, last_verdict="pass", last_seq=3,
    )  # fmt: skip


@pytest.mark.parametrize(("stage", "policy"), [("full", "long_only"), ("canary", "default")])
def test_a_policy_promoted_to_full_is_productions(
    monkeypatch: pytest.MonkeyPatch, stage: str, policy: str
) -> None:
    monkeypatch.setattr(ev, "candidates", lambda *a, **k: [_candidate(stage)])
    base = DailyConfig().model_copy(update={"portfolio_id": "main", "policy": "default"})
    config, source = tasks.production_config(base, DAY)
    assert config.policy == policy and source is None


def test_the_tasks_build_their_context_from_the_resolved_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = DailyConfig().model_copy(update={"portfolio_id": "main", "policy": "default"})
    monkeypatch.setattr(daily_tasks, "load_config", lambda *a, **k: base)
    seen: list[str] = []

    def resolve(config: DailyConfig, day: dt.date) -> tuple[DailyConfig, None]:
        seen.append(day.isoformat())
        return config.model_copy(update={"policy": "long_only"}), None

    ctx = daily_tasks._ctx(DAY.isoformat(), resolve=resolve)
    assert ctx.config.policy == "long_only" and seen == [DAY.isoformat()]
