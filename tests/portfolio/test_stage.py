"""Portfolio stage on a small simulated lake: risk model and targets stored point-in-time,
idempotently, and read back as of the decision's knowledge time."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.lake import Lake
from pipelines.portfolio import stage
from pipelines.portfolio.optimizer import MissingAlphaError
from pipelines.portfolio.policy import Band, load_policy
from pipelines.portfolio.rebalance import rebalance
from pipelines.testing.lakes import simulated_lake
from pipelines.timeline import decision_cutoff

pytestmark = pytest.mark.unit

DAY = dt.date(2023, 7, 28)


@pytest.fixture(scope="module")
def sim_lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    path: Path = tmp_path_factory.mktemp("portfolio_stage") / "lake"
    lake = simulated_lake(path, universe=40, start=dt.date(2023, 1, 3), end=dt.date(2023, 7, 31))
    stage.build_risk_model(lake, DAY, factor_return_history=True)
    return lake


def test_risk_model_round_trips_through_the_lake(sim_lake: Lake) -> None:
    model = stage.build_risk_model(sim_lake, DAY, store=False)
    stored = stage.load_risk_model(sim_lake, DAY, factor_return_start=dt.date(2023, 1, 1))
    assert set(stored.factor_names) == set(model.factor_names)
    assert stored.security_ids == tuple(sorted(model.security_ids))
    rng = np.random.default_rng(0)
    w = pd.Series(rng.standard_normal(model.n_assets), index=list(model.security_ids))
    a = model.portfolio_variance(w.to_numpy())
    b = stored.portfolio_variance(w.reindex(list(stored.security_ids)).to_numpy())
    assert b == pytest.approx(a, rel=1e-12)
    assert stored.factor_returns is not None and len(stored.factor_returns) > 100
    # Idempotent: building the same day again writes nothing.
    again = stage.store_risk_model(
        sim_lake, model, known_at=decision_cutoff(DAY), factor_return_history=True
    )
    assert set(again.values()) == {0}
    # Point in time: one microsecond before the cutoff nothing is known.
    with pytest.raises(LookupError, match="no risk model"):
        stage.load_risk_model(
            sim_lake, DAY, known_at=decision_cutoff(DAY) - dt.timedelta(microseconds=1)
        )


def test_rebalance_writes_targets_risk_and_solve_log_once(sim_lake: Lake) -> None:
    model = stage.load_risk_model(sim_lake, DAY)
    ids = list(model.security_ids)
    # Scores as the research stage writes them; one security has no score.
    scores = pd.DataFrame(
        {
            "security_id": ids[:-1],
            "score": np.linspace(-1, 1, len(ids) - 1),
            "model_id": "m1",
            "valid_date": DAY,
            "known_at": decision_cutoff(DAY) - dt.timedelta(hours=1),
        }
    )
    sim_lake.write("alpha_scores", scores)
    with pytest.raises(MissingAlphaError, match=ids[-1]):
        rebalance(
            stage.inputs_from_lake(sim_lake, DAY, pd.Series(dtype=float), "default", cash=1e7)
        )
    held = pd.Series({ids[0]: 1000.0, ids[1]: -500.0})
    targets = rebalance(
        stage.inputs_from_lake(
            sim_lake,
            DAY,
            held,
            "default",
            cash=1e7,
            missing_alpha="zero",
            lot_size=10,
            min_trade_notional=1000.0,
        )
    )
    assert targets.optimization.ok
    known = decision_cutoff(DAY)
    stage.store_targets(
        sim_lake, targets, known_at=known, policy="default", lot_size=10, min_trade_notional=1000.0
    )
    rows = sim_lake.as_of("target_portfolios", known_at=known, valid_at=DAY).to_pandas()
    assert len(rows) == len(ids)
    assert (rows["target_shares"] % 10 == 0).all()
    small = (rows["trade_shares"] != 0) & (rows["target_shares"] != 0)
    assert (rows.loc[small, "trade_notional"].abs() >= 1000.0).all()
    risk = sim_lake.as_of("target_risk", known_at=known, valid_at=DAY).to_pandas()
    comp = risk.set_index("component")["variance"]
    assert comp["total"] == pytest.approx(comp["factor"] + comp["specific"])
    per_factor = comp[[c for c in comp.index if c.startswith("factor:")]]
    assert len(per_factor) == model.n_factors
    assert per_factor.sum() == pytest.approx(comp["factor"])
    log = sim_lake.as_of("solve_log", known_at=known, valid_at=DAY).to_pandas()
    decision = log.set_index("seq").loc[0]
    assert decision["status"] == targets.optimization.status
    assert decision["objective"] == pytest.approx(targets.optimization.terms.objective)  # type: ignore[union-attr]
    assert len(log) == 1 + len(targets.optimization.solves)
    # Re-running the day records nothing new.
    again = stage.store_targets(sim_lake, targets, known_at=known, policy="default")
    assert set(again.values()) == {0}


def test_infeasible_policy_is_recorded_with_its_relaxations(sim_lake: Lake) -> None:
    model = stage.load_risk_model(sim_lake, DAY)
    ids = list(model.security_ids)
    alpha = pd.Series(np.linspace(-2e-3, 2e-3, len(ids)), index=ids)
    # Net exposure ≥ 50% of NAV contradicts the beta band (±0.05) and the sector bounds
    # (±2%): soft groups must give way, and the decision says which and by how much.
    policy = load_policy("default").model_copy(
        update={"net_exposure": Band(lo=0.5, hi=0.6), "name": "strict"}
    )
    targets = rebalance(
        stage.inputs_from_lake(
            sim_lake,
            DAY,
            pd.Series(dtype=float),
            policy,
            cash=1e7,
            alpha=alpha,
            portfolio_id="strict",
        )
    )
    stage.store_targets(sim_lake, targets, known_at=decision_cutoff(DAY), policy=policy.name)
    opt = targets.optimization
    assert opt.status == "relaxed"
    assert {r.group for r in opt.relaxations} & {"net_exposure", "beta", "sector_bounds"}
    log = sim_lake.as_of("solve_log", known_at=decision_cutoff(DAY), valid_at=DAY).to_pandas()
    decision = log[(log["portfolio_id"] == "strict") & (log["seq"] == 0)].iloc[0]
    assert decision["status"] == "relaxed"
    assert "net_exposure" in decision["relaxations"] or "beta" in decision["relaxations"]
