"""What one backtest retrain carries to the next: :class:`FitCarry`.

Consecutive walk-forward retrains (:func:`pipelines.research.stages.fit_and_score`) read
histories that share most of their sessions, and every row of a history is as its own
session knew it, so most of the work of a fit repeats the previous one's. A worker that
fits its blocks in order keeps a :class:`FitCarry` and hands it to each fit, which reuses
two things, each only where it can prove the result is the same bits:

* **features** (:meth:`FitCarry.features`): a feature's row ``t`` reads only rows
  ``[t - lookback, t]`` of the panel it is computed on (the lookback contract of
  :func:`~pipelines.features.registry.compute_feature`, which ``session_features`` already
  relies on to start its windows at the training fold). A row of the previous fit's
  first-print values is kept when the previous fit computed it and every field of every
  panel row it reads is bitwise equal in both panels (same securities, same fields, same
  dtypes); the rows from the first one that cannot be kept are computed as before, over
  their own lookback window.
* **normalised rows** (:meth:`FitCarry.normalized`): rank-gauss (and the other per-date
  normalisations) maps each row of the masked values to its output on its own, so a row
  whose masked input (values and universe) is bitwise equal to one the previous fit
  normalised under the same security axis gets that fit's output row.

Nothing is assumed about why rows are equal (late prints, fundamentals clamped at the
history's start, a new security): they are compared, and whatever differs is computed.
The live path never passes a carry, and a fit with one returns the same model and scores
as a fresh fit, bit for bit (``tests/research/test_fit_carry.py``, which also holds
every feature of :data:`COLUMN_LOCAL` to its promise).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.features.spec import FeatureSpec
from pipelines.pit.panel import Panel


@dataclass(frozen=True)
class _Features:
    """A fit's first-print feature values (rows before ``since`` unused) and its panel."""

    panel: Panel
    since: int
    specs: Mapping[str, FeatureSpec]
    values: Mapping[str, np.ndarray]


@dataclass(frozen=True)
class _Normalized:
    """One normalised plane of a fit: its axes, masked input and output (float64)."""

    dates: pd.DatetimeIndex
    securities: pd.Index
    how: str
    masked: np.ndarray
    out: np.ndarray


def _equal_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row of two same-shape 2-D arrays: every cell bitwise equal (objects: equal, or
    both NaN, or both None)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return np.zeros(len(a), dtype=bool)
    if a.dtype == object:
        eq = np.asarray(a == b, dtype=bool)
        if not eq.all():
            # unequal cells are equal only as the same missing value (NaN != NaN; None is
            # told apart from NaN)
            x, y = a[~eq], b[~eq]
            none_x = np.asarray(x == None, dtype=np.bool_)  # noqa: E711 (elementwise)
            none_y = np.asarray(y == None, dtype=np.bool_)  # noqa: E711
            eq[~eq] = pd.isna(x) & pd.isna(y) & (none_x == none_y)
        return np.asarray(eq.all(axis=1))
    if a.dtype.kind in "fiub" or a.dtype.kind == "M":
        width = a.dtype.itemsize
        view = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}.get(width)
        if view is None:
            return np.zeros(len(a), dtype=bool)
        return np.asarray((a.view(view) == b.view(view)).all(axis=1))
    return np.zeros(len(a), dtype=bool)


def _empty(a: np.ndarray) -> np.ndarray:
    """Per row: every cell missing (NaN, None, False)."""
    if a.dtype == object:
        return np.asarray(pd.isna(a).all(axis=1))
    if a.dtype == bool:
        return np.asarray(~a.any(axis=1))
    if a.dtype.kind == "f":
        return np.asarray(np.isnan(a).all(axis=1))
    return np.zeros(len(a), dtype=bool)


#: Features whose value at a cell reads only its own security's rows (elementwise and
#: rolling ops along time, :mod:`pipelines.pit.ops`) or, besides, the median of its
#: sector's in-universe values on its date (an order statistic: the same whatever other
#: securities are on the axis, wherever they are, as long as they hold nothing). Their
#: rows may be carried onto a panel whose security axis gained or lost securities that are
#: empty in the rows read (:func:`same_rows`), where they are NaN. Any other feature
#: (e.g. the market regression's cap-weighted sums, whose float sums depend on the axis)
#: is only carried onto the same axis.
COLUMN_LOCAL: frozenset[str] = frozenset(
    {
        "adv_21d",
        "amihud_21d",
        "turnover_21d",
        "momentum_12_1",
        "reversal_5d",
        "reversal_21d",
        "max_ret_21d",
        "roe",
        "roa",
        "accruals",
        "asset_growth_252d",
        "volatility_21d",
        "volatility_63d",
        "sentiment_5d",
        "sentiment_surprise",
        "size_log_mcap",
        "book_to_price",
        "earnings_yield",
        "sales_to_price",
        "cfo_to_price",
        "momentum_12_1_sector_rel",
        "volatility_63d_sector_rel",
        "earnings_yield_sector_rel",
        "roe_sector_rel",
        "book_to_price_sector_rel",
        "sentiment_5d_sector_rel",
    }
)


@dataclass(frozen=True)
class _Rows:
    """How the rows of a new panel match an old one's: ``pos`` = each row's position in
    the old panel (-1 when absent); ``same`` = every field equal on the same security axis;
    ``mapped`` = equal on the securities of both and empty on the others'; the columns of
    the new axis in the old one (-1 for a new security)."""

    pos: np.ndarray
    same: np.ndarray
    mapped: np.ndarray
    cols: np.ndarray


def same_rows(new: Panel, old: Panel) -> _Rows:
    """How each row of ``new`` matches ``old`` (:class:`_Rows`; nothing matches when the
    fields or their order differ)."""
    n = len(new.dates)
    pos = np.asarray(old.dates.get_indexer(new.dates))
    cols = np.asarray(old.securities.get_indexer(new.securities))
    nothing = np.zeros(n, dtype=bool)
    if list(new.fields) != list(old.fields) or not new.securities.is_unique:
        return _Rows(pos, nothing, nothing, cols)
    identical = list(new.securities) == list(old.securities)
    common_new = np.nonzero(cols >= 0)[0]
    common_old = cols[common_new]
    new_only = cols < 0
    old_only = np.ones(len(old.securities), dtype=bool)
    old_only[common_old] = False
    mapped = pos >= 0
    idx = np.nonzero(mapped)[0]
    for name, frame in new.fields.items():
        if not len(idx):
            break
        a = frame.to_numpy()[idx]
        b = old.fields[name].to_numpy()[pos[idx]]
        if identical:
            eq = _equal_rows(a, b)
        else:
            eq = _equal_rows(
                np.ascontiguousarray(a[:, common_new]), np.ascontiguousarray(b[:, common_old])
            )
            eq &= _empty(a[:, new_only]) & _empty(b[:, old_only])
        mapped[idx[~eq]] = False
        idx = idx[eq]
    return _Rows(pos, mapped if identical else nothing, mapped, cols)


def _reuse_rows(
    old: _Normalized, dates: pd.DatetimeIndex, securities: pd.Index, how: str, masked: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """A plane for ``masked`` on ``dates`` x ``securities`` holding ``old``'s output rows
    whose masked input is the same, and which rows those are (the others are to compute;
    None when no row can be reused).

    A row is the same when it is bitwise equal on the securities of both planes and
    missing (NaN) on the securities of only one; under another security axis only for
    rank-gauss, whose output at a cell is a function of that cell's value and the set of
    the row's finite values (average ranks among them, over their count), wherever the
    missing cells are (a z-score's sums depend on the cells' order)."""
    T, N = masked.shape
    identical = list(old.securities) == list(securities)
    if not identical and how != "rank_gauss":
        return None
    pos = np.asarray(old.dates.get_indexer(dates))
    idx = np.nonzero(pos >= 0)[0]
    if not len(idx) or not N:
        return None
    if identical:
        same = _equal_rows(masked[idx], old.masked[pos[idx]])
        out = np.empty((T, N))
        rows = idx[same]
        out[rows] = old.out[pos[rows]]
        done = np.zeros(T, dtype=bool)
        done[rows] = True
        return out, done
    cols = np.asarray(old.securities.get_indexer(securities))
    new_only = cols < 0
    common_new = np.nonzero(~new_only)[0]
    common_old = cols[common_new]
    old_only = np.ones(len(old.securities), dtype=bool)
    old_only[common_old] = False
    new_rows, old_rows = masked[idx], old.masked[pos[idx]]
    same = _equal_rows(
        np.ascontiguousarray(new_rows[:, common_new]),
        np.ascontiguousarray(old_rows[:, common_old]),
    )
    same &= np.isnan(new_rows[:, new_only]).all(axis=1)
    same &= np.isnan(old_rows[:, old_only]).all(axis=1)
    out = np.empty((T, N))
    rows = idx[same]
    kept = np.full((len(rows), N), np.nan)
    kept[:, common_new] = old.out[pos[rows]][:, common_old]
    out[rows] = kept
    done = np.zeros(T, dtype=bool)
    done[rows] = True
    return out, done


class FitCarry:
    """The previous fit's features and normalised planes (module docstring). One per
    worker (per :class:`~pipelines.backtest.retrain.ScannedInputs`); fits using it are
    serialised by its lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._features: _Features | None = None
        self._normalized: dict[str, _Normalized] = {}
        self._next_normalized: dict[str, _Normalized] = {}
        #: rows kept / computed by the last fit (features, normalised planes), for tests
        self.kept: dict[str, int] = {"features": 0, "normalized": 0}

    def features(
        self,
        panel: Panel,
        specs: Mapping[str, FeatureSpec],
        since: int,
        compute: Callable[[FeatureSpec, Panel], pd.DataFrame],
    ) -> dict[str, pd.DataFrame]:
        """Every feature of ``specs`` over ``panel``'s rows from ``since`` on (earlier rows
        NaN), as ``compute(spec, panel.iloc(since - lookback, n))`` gives them, keeping the
        previous fit's rows that read only rows equal in both panels."""
        n, width = len(panel.dates), len(panel.securities)
        old = self._features
        match = same_rows(panel, old.panel) if old is not None else None
        windows: dict[tuple[int, int], Panel] = {}
        values: dict[str, np.ndarray] = {}
        kept = 0
        for name, spec in specs.items():
            lookback = spec.lookback
            first = since
            ok_rows = None
            if match is not None and old is not None and old.specs.get(name) == spec:
                ok_rows = match.mapped if name in COLUMN_LOCAL else match.same
            if ok_rows is not None and match is not None and old is not None:
                bad = np.concatenate([[0], np.cumsum(~ok_rows)])  # bad[t + 1]: rows <= t
                rows = np.arange(since, n)
                lo = rows - lookback
                ok = (lo >= 0) & (match.pos[rows] >= old.since)
                ok &= bad[rows + 1] - bad[np.maximum(lo, 0)] == 0
                first = since + int(np.argmin(ok)) if not ok.all() else n
            out = np.full((n, width), np.nan)
            if first > since and match is not None and old is not None:
                carried = old.values[name][match.pos[since:first]]
                known = match.cols >= 0
                # a security the old axis lacks is empty in every row read: NaN there
                out[since:first, known] = carried[:, match.cols[known]]
                kept += first - since
            if first < n:
                window = windows.get((lookback, first))
                if window is None:
                    window = windows[(lookback, first)] = panel.iloc(first - lookback, n)
                frame = compute(spec, window)
                at = window.dates.get_indexer(panel.dates[first:])
                out[first:] = frame.to_numpy(dtype=np.float64)[at]
            out.flags.writeable = False
            values[name] = out
        self._features = _Features(panel, since, dict(specs), values)
        self.kept["features"] = kept
        return {
            name: pd.DataFrame(v, index=panel.dates, columns=panel.securities, copy=False)
            for name, v in values.items()
        }

    def normalized(
        self,
        key: str,
        dates: pd.DatetimeIndex,
        securities: pd.Index,
        how: str,
        masked: np.ndarray,
        normalize: Callable[[np.ndarray], np.ndarray],
    ) -> np.ndarray:
        """``normalize(masked)`` (a row-by-row normalisation of the masked values, NaN
        outside the universe) with the rows the previous fit normalised from equal input
        under the same securities and method taken from it; remembered under ``key`` for
        the next fit."""
        old = self._normalized.get(key)
        reused = None
        if old is not None and old.how == how:
            reused = _reuse_rows(old, dates, securities, how, masked)
        if reused is None:
            out = normalize(masked)
        else:
            out, done = reused
            todo = np.nonzero(~done)[0]
            self.kept["normalized"] += len(dates) - len(todo)
            if len(todo):
                out[todo] = normalize(masked[todo])
        self._next_normalized[key] = _Normalized(dates, securities, how, masked, out)
        return out

    def end_fit(self) -> None:
        """Keep the planes normalised by this fit (and only those) for the next one."""
        self._normalized, self._next_normalized = self._next_normalized, {}

    def start_fit(self) -> None:
        self._next_normalized = {}
        self.kept = {"features": 0, "normalized": 0}
