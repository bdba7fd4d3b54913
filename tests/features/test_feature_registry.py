"""Feature registry, library and point-in-time guarantees."""

from __future__ import annotations

import textwrap
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from pipelines.config import get_settings
from pipelines.features import compute_feature, feature, registry, unregister
from pipelines.features.spec import FeatureSpec
from pipelines.pit.panel import Panel, UndeclaredInputError
from pipelines.testing.lookahead import frames_equal, perturb_after
from pipelines.testing.panels import synthetic_panel

pytestmark = pytest.mark.unit

REQUIRED = {
    "momentum_12_1",
    "reversal_5d",
    "reversal_21d",
    "volatility_21d",
    "volatility_63d",
    "beta_252d",
    "idio_vol_252d",
    "size_log_mcap",
    "book_to_price",
    "earnings_yield",
    "roe",
    "accruals",
    "adv_21d",
    "amihud_21d",
    "sentiment_5d",
}


@lru_cache(maxsize=1)
def small_panel() -> Panel:
    return synthetic_panel(n_securities=40, n_days=300, seed=11, signal_strength=0.1)


def test_registry_ships_standard_features() -> None:
    specs = registry()
    assert len(specs) >= 20
    assert set(specs) >= REQUIRED
    assert any(s.kind == "sql" for s in specs.values())
    assert sum(name.endswith("_sector_rel") for name in specs) >= 3
    for spec in specs.values():
        assert isinstance(spec, FeatureSpec) and spec.lookback >= 0 and spec.inputs


def test_single_date_window_equals_full_history() -> None:
    """Computing date D from rows [D − lookback, D] only is bit-identical to the full run."""
    panel = small_panel()
    probe = [panel.dates[i] for i in (3, 252, 253, 280, len(panel.dates) - 1)]
    for name, spec in registry().items():
        full = compute_feature(spec, panel)
        assert np.isfinite(full.to_numpy()[-1]).any(), f"{name} is all-NaN on the last date"
        for d in probe:
            one = compute_feature(spec, panel, dates=[d])
            assert frames_equal(one, full.loc[[d]]), f"{name} differs on {d.date()}"


def test_features_are_point_in_time() -> None:
    """Scrambling every value after D leaves all features for dates <= D bit-identical."""
    panel = small_panel()
    cutoff = panel.dates[270]
    perturbed = perturb_after(panel, cutoff, seed=3)
    for name, spec in registry().items():
        a = compute_feature(spec, panel).loc[:cutoff]
        b = compute_feature(spec, perturbed).loc[:cutoff]
        assert frames_equal(a, b), name
        after_a = compute_feature(spec, panel).loc[cutoff:].iloc[1:]
        after_b = compute_feature(spec, perturbed).loc[cutoff:].iloc[1:]
        if not after_a.isna().all().all():  # the perturbation must actually bite
            assert not frames_equal(after_a, after_b), name


def test_new_python_and_sql_features_are_discovered(tmp_path, monkeypatch) -> None:
    (tmp_path / "my_alpha.py").write_text(
        textwrap.dedent(
            '''
            from pipelines.features import feature
            from pipelines.pit.ops import rolling_mean

            @feature(name="tmp_volume_trend", inputs=["volume"], lookback=9)
            def tmp_volume_trend(panel):
                """10-day mean volume over today's volume."""
                v = panel.array("volume")
                return rolling_mean(v, 10) / v
            '''
        )
    )
    (tmp_path / "tmp_cap_rank.sql").write_text(
        textwrap.dedent(
            """\
            -- name: tmp_cap_rank
            -- inputs: [market_cap, in_universe]
            -- lookback: 0
            SELECT date, security_id,
                   percent_rank() OVER (PARTITION BY date ORDER BY market_cap) AS value
            FROM panel WHERE in_universe AND market_cap IS NOT NULL
            """
        )
    )
    try:
        assert "tmp_volume_trend" not in registry()
        specs = registry(extra_dirs=[tmp_path])
        assert {"tmp_volume_trend", "tmp_cap_rank"} <= set(specs)
        panel = small_panel()
        trend = compute_feature("tmp_volume_trend", panel, specs=specs)
        vol = panel.field("volume")
        expected = vol.rolling(10).mean() / vol
        np.testing.assert_allclose(trend.iloc[20:], expected.iloc[20:], rtol=1e-12)
        rank = compute_feature("tmp_cap_rank", panel, specs=specs)
        row = rank.iloc[-1].dropna()
        assert row.between(0, 1).all() and len(row) == panel.universe()[-1].sum()
        # the environment variable route (how a DAG would find the sandbox)
        monkeypatch.setenv("ALPHAFACTORY_FEATURE_PATHS", str(tmp_path))
        get_settings.cache_clear()
        assert "tmp_cap_rank" in registry()
    finally:
        unregister("tmp_volume_trend")


def test_undeclared_input_fails_loudly() -> None:
    @feature(name="tmp_bad_feature", inputs=["close"], lookback=0)
    def bad(panel: Panel) -> np.ndarray:
        return panel.array("volume")

    try:
        with pytest.raises(UndeclaredInputError):
            compute_feature("tmp_bad_feature", small_panel())
    finally:
        unregister("tmp_bad_feature")


def test_values_match_naive_pandas() -> None:
    panel = small_panel()
    adj, ret = panel.field("adj_close"), panel.field("ret")
    mom = compute_feature("momentum_12_1", panel)
    pd.testing.assert_frame_equal(mom, adj.shift(21) / adj.shift(252) - 1.0, check_freq=False)
    vol = compute_feature("volatility_63d", panel)
    ref = ret.rolling(63, min_periods=42).std()
    np.testing.assert_allclose(vol.iloc[62:], ref.iloc[62:], rtol=1e-9, atol=1e-14)
    # beta against the same cap-weighted market, via pandas rolling cov/var on one name
    cap_w = panel.field("market_cap").where(panel.field("in_universe")).shift(1)
    ok = cap_w.notna() & ret.notna()
    mkt = (cap_w * ret).where(ok).sum(axis=1) / cap_w.where(ok).sum(axis=1)
    beta = compute_feature("beta_252d", panel)
    sec = panel.securities[0]
    pair = pd.DataFrame({"r": ret[sec], "m": mkt}).dropna()
    b_ref = pair["r"].rolling(252).cov(pair["m"]) / pair["m"].rolling(252).var()
    last = panel.dates[-1]
    assert beta.loc[last, sec] == pytest.approx(b_ref.loc[last], rel=1e-8)


def test_a_field_has_a_value_when_any_cell_holds_one_whatever_its_dtype() -> None:
    """``has_value`` looks at an object field's last row first (a fast path): a value only
    in an earlier row, or none at all, is still told apart."""
    from pipelines.features.availability import has_value

    dates = pd.bdate_range("2024-01-01", periods=3)
    secs = pd.Index(["A", "B"])
    sector = pd.DataFrame([[None, "Tech"], [None, None], [None, None]], dates, secs, dtype=object)
    blank = pd.DataFrame([[None] * 2] * 3, dates, secs, dtype=object)
    floats = pd.DataFrame([[np.nan, 1.0], [np.nan, np.nan], [np.nan, np.nan]], dates, secs)
    panel = Panel(dates, secs, {"sector": sector, "blank": blank, "close": floats})
    assert has_value(panel, "sector") and has_value(panel, "close")
    assert not has_value(panel, "blank")
    assert not has_value(panel.iloc(1, 3), "close") and not has_value(panel.iloc(1, 3), "sector")
