"""A session of the daily loop decided again under another policy: a relaxed or an
infeasible day for the PM report, from the day's recorded inputs (the real optimizer)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import yaml

from pipelines.lake import Lake
from pipelines.lake.stage_state import StageState
from pipelines.portfolio.policy import load_policy
from pipelines.portfolio.targets import TargetPortfolio
from pipelines.report.pm import ReportSubject
from tests.daily.helpers import CONFIG


def redecide(lake: Lake, day: dt.date, policy_file: Path, **changes: object) -> ReportSubject:
    """Write ``policy_file`` (the loop's policy with ``changes``), re-run the day's
    rebalance under it (with the pre-trade limits, as the optimize stage does) and store the
    new targets as the day's ``targets``; the report subject that names that policy."""
    from pipelines.portfolio.rebalance import RebalanceInputs, rebalance
    from pipelines.risk.consistency import load_policy_with_limits

    base = load_policy(CONFIG.policy).model_dump(mode="json", exclude_none=True)
    policy_file.write_text(yaml.safe_dump({**base, **changes}))
    art = StageState(lake, CONFIG.portfolio_id, day, clock=lambda: dt.datetime.now(dt.UTC))
    old: TargetPortfolio = art.get("targets")
    book = art.get("book")
    model = art.get("risk_model")
    ids = list(old.optimization.security_ids)
    targets = rebalance(
        RebalanceInputs(
            day=day,
            portfolio_id=CONFIG.portfolio_id,
            policy=load_policy_with_limits(str(policy_file), CONFIG.limits)[0],
            risk_model=model,
            alpha=pd.Series(old.optimization.alpha, index=ids),
            prices=pd.Series(book.prices, dtype=float),
            current_shares=pd.Series(book.positions, dtype=float),
            nav=book.nav,
            adv_shares=pd.Series(book.adv_shares, dtype=float),
            volatility=pd.Series(0.02, index=ids),
            min_trade_notional=CONFIG.min_trade_notional,
            missing_alpha="zero",
            outside_holdings="liquidate",
        )
    )
    art.put("targets", targets)
    return ReportSubject(CONFIG.portfolio_id, str(policy_file), CONFIG.limits)
