"""Look-ahead checks on panels: perturb the future, compare the past (tests and benchmarks)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.pit.panel import SECTOR_FIELD, UNIVERSE_FIELD, Panel


def perturb_after(panel: Panel, date: pd.Timestamp | str, seed: int = 0) -> Panel:
    """A copy of ``panel`` where every value on rows strictly after ``date`` is scrambled.

    Numeric fields are rescaled/shifted (and some cells flipped to/from NaN),
    sectors rotated and universe membership redrawn. Anything computed "as of"
    a date <= ``date`` must be bit-identical on the result.
    """
    rng = np.random.default_rng(seed)
    cut = int(panel.dates.searchsorted(pd.Timestamp(date), side="right"))
    fields: dict[str, pd.DataFrame] = {}
    for name, frame in panel.fields.items():
        if cut >= len(panel.dates):
            fields[name] = frame
            continue
        tail_shape = (len(panel.dates) - cut, len(panel.securities))
        if name == UNIVERSE_FIELD:
            values = frame.to_numpy(dtype=bool).copy()
            values[cut:] = rng.random(tail_shape) < 0.5
        elif name == SECTOR_FIELD:
            values = frame.to_numpy(dtype=object).copy()
            values[cut:] = np.roll(values[cut:], 1, axis=1)
        else:
            values = frame.to_numpy(dtype=np.float64).copy()
            tail = values[cut:]
            noise = rng.uniform(0.5, 1.5, tail_shape)
            tail = np.where(np.isfinite(tail), tail * noise, rng.uniform(0.1, 2.0, tail_shape))
            tail[rng.random(tail_shape) < 0.05] = np.nan
            values[cut:] = tail
        fields[name] = pd.DataFrame(values, index=frame.index, columns=frame.columns)
    return Panel(panel.dates, panel.securities, fields)


def frames_equal(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Bit-identical values and axes (NaN == NaN)."""
    return (
        a.index.equals(b.index)
        and a.columns.equals(b.columns)
        and np.array_equal(
            a.to_numpy(dtype=np.float64), b.to_numpy(dtype=np.float64), equal_nan=True
        )
    )
