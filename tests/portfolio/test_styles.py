"""The style panels' whole-panel rolling statistics equal pandas' per-column ones bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.portfolio.styles import rolling_panel

pytestmark = pytest.mark.unit


def _awkward_panel(seed: int) -> pd.DataFrame:
    """Leading/interior NaNs, infinities, constant and repeated-value columns, wide scales."""
    rng = np.random.default_rng(seed)
    n_rows, n_cols = int(rng.integers(1, 140)), int(rng.integers(1, 25))
    x = rng.standard_normal((n_rows, n_cols)) * 10 ** rng.uniform(-4, 6)
    if seed % 2:
        x = np.round(x, 1)
    x[rng.random((n_rows, n_cols)) < rng.uniform(0, 0.5)] = np.nan
    for j in range(n_cols):
        x[: int(rng.integers(0, n_rows + 1)), j] = np.nan if rng.random() < 0.3 else x[0, j]
        if rng.random() < 0.1:
            x[:, j] = 3.0
        if rng.random() < 0.05:
            x[int(rng.integers(0, n_rows)), j] = np.inf
    return pd.DataFrame(x)


def _bits(frame: pd.DataFrame) -> np.ndarray:
    values = frame.to_numpy(dtype=float)
    return np.where(np.isnan(values), np.nan, values).view(np.int64)


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize(
    ("stat", "window", "min_periods"),
    [("sum", 105, 20), ("mean", 20, 5), ("std", 63, 20), ("sum", 3, 1), ("std", 5, 2)],
)
def test_rolling_panel_is_pandas_rolling(
    seed: int, stat: str, window: int, min_periods: int
) -> None:
    panel = _awkward_panel(seed)
    rolled = panel.rolling(window, min_periods=min_periods)
    expected = rolled.std(ddof=1) if stat == "std" else getattr(rolled, stat)()
    got = rolling_panel(panel, window, min_periods, stat)  # type: ignore[arg-type]
    assert got.index.equals(expected.index) and got.columns.equals(expected.columns)
    assert np.array_equal(_bits(got), _bits(expected))


def test_rolling_panel_empty() -> None:
    empty = pd.DataFrame(index=pd.DatetimeIndex([]), columns=pd.Index(["a"]), dtype=float)
    assert rolling_panel(empty, 5, 1, "sum").shape == (0, 1)


@pytest.mark.parametrize("seed", range(12))
def test_style_panels_are_the_pandas_formulas(seed: int) -> None:
    """The styles computed on the panels' values are pandas' aligned-frame formulas."""
    from pipelines.portfolio.styles import style_panels
    from tests.pit.test_snapshot_panels import _snapshot

    snap = _snapshot(seed)
    mcap = snap.market_cap()
    ret = snap.returns
    dollar = rolling_panel(snap.close * snap.volume, 20, 5, "mean")
    book = snap.book_equity.reindex(snap.close.columns)
    with np.errstate(divide="ignore", invalid="ignore"):
        want = {
            "size": np.log(mcap.where(mcap > 0)),
            "momentum": rolling_panel(ret.shift(21), 105, 20, "sum"),
            "value": (1.0 / mcap.where(mcap > 0)).mul(book, axis=1),
            "volatility": rolling_panel(ret, 63, 20, "std"),
            "liquidity": np.log(dollar.where(dollar > 0)),
        }
    today = pd.Timestamp(snap.day)
    want = {k: v for k, v in want.items() if v.loc[today].notna().any()}
    got = style_panels(snap)
    assert list(got) == list(want)
    for name, frame in got.items():
        assert frame.index.equals(want[name].index), name
        assert frame.columns.equals(want[name].columns), name
        assert np.array_equal(_bits(frame), _bits(want[name])), name


def test_column_windows_signature_is_the_methods_own() -> None:
    """The signature pandas reads for the custom indexer (set once, see styles.py) is the
    method's, so pandas' check still sees what it would compute."""
    import inspect

    from pipelines.portfolio.styles import _ColumnWindows

    bound = _ColumnWindows(5, 3).get_window_bounds
    fresh = inspect.Signature.from_callable(bound, follow_wrapped=False)
    assert inspect.signature(bound) == fresh
    assert list(fresh.parameters) == ["num_values", "min_periods", "center", "closed", "step"]
