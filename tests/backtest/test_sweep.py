"""Sweep grids: parsing with errors naming the file and key, stable variant ids, and the
comparison's ranking and deflated Sharpe (issue 16)."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines.backtest.sweep import (
    Sweep,
    SweepGridError,
    VariantResult,
    compare,
    load_grid,
    parse_grid,
    render_comparison,
    variant_id,
)
from pipelines.portfolio.policy import load_policy

pytestmark = pytest.mark.unit

GRID = {
    "name": "costs",
    "start": "2024-05-14",
    "end": "2024-05-30",
    "config": {"lookback_sessions": 60},
    "grid": {
        "policy.risk_aversion": [5, 10],
        "policy.cost_aversion": [0.5, 2.0],
        "alpha_ic": [0.03, 0.05],
    },
    "variants": [{"policy": "long_only"}],
}


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_grid_is_the_cartesian_product_plus_extra_variants(tmp_path: Path) -> None:
    sweep = load_grid(_write(tmp_path, GRID))
    assert len(sweep.variants) == 2 * 2 * 2 + 1
    assert sweep.start == dt.date(2024, 5, 14) and sweep.base["lookback_sessions"] == 60
    assert len({v.variant_id for v in sweep.variants}) == 9
    # Round trip through the DAG run's conf: same sweep, same ids.
    again = Sweep.from_conf(sweep.to_conf())
    assert again.sweep_id == sweep.sweep_id
    assert [v.variant_id for v in again.variants] == [v.variant_id for v in sweep.variants]


def test_variant_ids_are_stable_hashes_of_the_parameters() -> None:
    a = variant_id({"alpha_ic": 0.03, "policy.risk_aversion": 5})
    assert a == variant_id({"policy.risk_aversion": 5, "alpha_ic": 0.03})
    assert a != variant_id({"policy.risk_aversion": 5, "alpha_ic": 0.05})
    assert a.startswith("v-") and len(a) == 12


def test_policy_overrides_become_a_policy_file(tmp_path: Path) -> None:
    from pipelines.backtest.sweep import _materialise

    sweep = load_grid(_write(tmp_path, GRID))
    variant = next(v for v in sweep.variants if v.params.get("policy.risk_aversion") == 5)
    cfg = _materialise(sweep.base, variant, sweep.source)
    policy = load_policy(cfg.policy)
    assert (
        policy.risk_aversion == 5 and policy.cost_aversion == variant.params["policy.cost_aversion"]
    )
    assert policy.turnover_cap == load_policy("default").turnover_cap  # the rest unchanged
    # Same overrides, same file: the backtest's config hash is the same on every run.
    assert _materialise(sweep.base, variant, sweep.source).policy == cfg.policy


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"grid": {"policy.risk_aversoin": [1]}}, "key 'grid.policy.risk_aversoin'"),
        ({"grid": {"alpha": [1]}}, "key 'grid.alpha': not a daily config field"),
        ({"grid": {"alpha_ic": 0.05}}, "key 'grid.alpha_ic': expected a non-empty list"),
        ({"grid": {"policy.risk_aversion": [-1]}}, "key 'policy.risk_aversion'"),
        ({"grid": {"alpha_ic": [-0.1]}}, "key 'alpha_ic'"),
        ({"grid": {"policy": ["no_such_policy"]}}, "key 'policy': cannot load policy"),
        ({"start": "2024-13-01"}, "key 'start'"),
        ({"end": "2024-05-01"}, "key 'end' 2024-05-01 is before 'start'"),
        ({"sessions": 3}, "unknown key 'sessions'"),
        ({"config": {"alpha_ic": "x"}}, "key 'config'"),
        ({"grid": {}, "variants": []}, "no variants"),
    ],
)
def test_bad_grids_name_the_file_and_the_key(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    path = _write(tmp_path, {**GRID, "variants": [], **change})
    with pytest.raises(SweepGridError) as err:
        load_grid(path)
    assert str(path) in str(err.value) and message in str(err.value), str(err.value)


def test_a_missing_grid_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SweepGridError, match="does not exist"):
        load_grid(tmp_path / "nope.yaml")


def _result(vid: str, returns: np.ndarray) -> VariantResult:
    dates = pd.bdate_range("2024-01-02", periods=len(returns)).date
    nav = 1e7 * np.cumprod(1 + returns)
    curve = pd.DataFrame(
        {
            "date": dates,
            "nav": nav,
            "ret": returns,
            "turnover": 0.1,
            "cost": 10.0,
            "ic": 0.0,
        }
    )
    sharpe = float(returns.mean() / returns.std(ddof=1) * math.sqrt(252))
    metrics = {"sharpe": sharpe, "cagr": 0.0, "max_drawdown": 0.1, "sessions": float(len(returns))}
    return VariantResult(vid, {"alpha_ic": vid}, f"bt-{vid}", "h", metrics, curve, None)


def test_the_best_of_20_null_variants_is_ranked_first_and_not_significant() -> None:
    rng = np.random.default_rng(4)
    results = [_result(f"v{i:02d}", rng.normal(0, 0.01, 250)) for i in range(20)]
    comparison = compare(results)
    table = comparison.table
    assert list(table["rank"]) == list(range(1, 21))
    assert table["sharpe"].is_monotonic_decreasing
    assert comparison.best == table["variant"].iloc[0]
    assert table["sharpe"].iloc[0] > 1.0  # luck: the winner looks good undeflated
    print(
        f"best null Sharpe {table['sharpe'].iloc[0]:.2f}, DSR {comparison.best_deflated_sharpe:.3f}"
    )
    assert comparison.best_deflated_sharpe < 0.95
    assert comparison.n_trials == 20 and comparison.trial_sharpes_variance > 0


def test_a_real_edge_among_null_variants_stays_significant() -> None:
    rng = np.random.default_rng(5)
    results = [_result(f"v{i:02d}", rng.normal(0, 0.01, 500)) for i in range(9)]
    results.append(_result("edge", rng.normal(0.003, 0.01, 500)))  # annual Sharpe ≈ 4.8
    comparison = compare(results)
    assert comparison.best == "edge" and comparison.best_deflated_sharpe > 0.99


def test_comparison_report_lists_every_variant() -> None:
    rng = np.random.default_rng(6)
    results = [_result(f"v{i}", rng.normal(0, 0.01, 60)) for i in range(3)]
    sweep = parse_grid(
        {"start": "2024-01-02", "end": "2024-03-28", "grid": {"alpha_ic": [0.01, 0.02, 0.03]}},
        source="inline",
    )
    text = render_comparison(sweep, results, compare(results))
    for r in results:
        assert r.variant_id in text
    assert "deflated Sharpe" in text.lower() or "Deflated Sharpe" in text
    assert 'class="sortable"' in text and "data:image/png;base64," in text
