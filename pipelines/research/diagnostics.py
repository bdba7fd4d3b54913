"""Signal diagnostics as tidy DataFrames (ready to be stored in the lake).

Scores come in long form ``[date, security_id, score, model_id]`` (as produced
by :func:`models.walk_forward.run_walk_forward`); forward returns are wide
(dates x securities, label date t = return over (t, t + h]).

Output schemas
--------------
* :func:`ic_by_date` → ``[date, model_id, horizon, ic, rank_ic, n]``
* :func:`ic_summary` → ``[model_id, horizon, n_dates, mean_ic, std_ic, icir,
  mean_rank_ic, std_rank_ic, rank_icir, rank_ic_se]``
* :func:`ic_decay` → same columns as :func:`ic_summary`, one row per horizon
* :func:`quantile_returns` → ``[date, model_id, horizon, quantile, mean_return, n]``
* :func:`quantile_summary` → ``[model_id, horizon, quantile, mean_return, std_return, n_dates]``
  (quantile ``"Q1"`` … ``"Qk"`` plus ``"Qk-Q1"`` the top-minus-bottom spread)
* :func:`feature_importance` → ``[model_id, feature, gain, split, gain_share, mean_abs_contrib]``
* :func:`skipped_feature_rows` → ``research_diagnostics`` rows of skipped features;
  :func:`skipped_summary` → ``[feature, reason, first_date, last_date, sessions]``
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from models.base import Model
from pipelines.features.availability import FeatureSkip
from pipelines.pit.labels import forward_returns
from pipelines.pit.panel import Panel

IC_DECAY_HORIZONS: tuple[int, ...] = (1, 5, 10, 21)
#: ``research_diagnostics.kind`` of a feature a stage skipped: ``name`` is the feature and
#: ``bucket`` the one-line reason (part of the key, so a changed reason is a new row).
SKIPPED_FEATURE_KIND = "skipped_feature"


def _wide_scores(scores: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    wide = scores.pivot(index="date", columns="security_id", values="score")
    return wide.reindex(index=like.index, columns=like.columns)


def _groups(scores: pd.DataFrame, model_label: str | None) -> list[tuple[str, pd.DataFrame]]:
    if model_label is not None:
        return [(model_label, scores)]
    return [(str(k), g) for k, g in scores.groupby("model_id", sort=True)]


def _row_pearson(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row Pearson correlation over cells finite in both; (corr, n)."""
    ok = np.isfinite(a) & np.isfinite(b)
    n = ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        a0 = np.where(ok, a, 0.0)
        b0 = np.where(ok, b, 0.0)
        da = np.where(ok, a0 - a0.sum(axis=1, keepdims=True) / n[:, None], 0.0)
        db = np.where(ok, b0 - b0.sum(axis=1, keepdims=True) / n[:, None], 0.0)
        corr = (da * db).sum(axis=1) / np.sqrt((da * da).sum(axis=1) * (db * db).sum(axis=1))
    return np.where(n >= 3, corr, np.nan), n


def _row_spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row Spearman rank correlation (average ranks) over cells finite in both."""
    ok = np.isfinite(a) & np.isfinite(b)
    ra = rankdata(np.where(ok, a, np.nan), axis=1, nan_policy="omit")
    rb = rankdata(np.where(ok, b, np.nan), axis=1, nan_policy="omit")
    return _row_pearson(ra, rb)[0]


def ic_by_date(
    scores: pd.DataFrame,
    fwd_returns: pd.DataFrame,
    horizon: int,
    model_label: str | None = None,
) -> pd.DataFrame:
    """Per date and model: Pearson IC and Spearman rank IC of score vs forward return.

    ``model_label`` pools all rows under one name (e.g. the stitched
    walk-forward signal); otherwise one series per ``model_id``.
    """
    out = []
    for model_id, group in _groups(scores, model_label):
        dates = pd.DatetimeIndex(group["date"].unique()).sort_values()
        fwd = fwd_returns.reindex(index=dates)
        s = _wide_scores(group, fwd).to_numpy(dtype=np.float64)
        r = fwd.to_numpy(dtype=np.float64)
        ic, n = _row_pearson(s, r)
        out.append(
            pd.DataFrame(
                {
                    "date": dates,
                    "model_id": model_id,
                    "horizon": horizon,
                    "ic": ic,
                    "rank_ic": _row_spearman(s, r),
                    "n": n,
                }
            )
        )
    frame = pd.concat(out, ignore_index=True) if out else pd.DataFrame()
    return frame[frame["n"] >= 3].reset_index(drop=True) if len(frame) else frame


def ic_summary(ic: pd.DataFrame) -> pd.DataFrame:
    """Mean/std/IR of the daily IC series per (model_id, horizon).

    ``icir = mean / std`` (per period, not annualized). ``rank_ic_se`` is the
    standard error of the mean rank IC using non-overlapping observations:
    std / sqrt(n_dates / horizon) (daily h-day labels overlap, so the naive
    std / sqrt(n) would overstate significance).
    """
    rows = []
    for (model_id, horizon), g in ic.groupby(["model_id", "horizon"], sort=True):
        n = int(g["rank_ic"].notna().sum())
        mean_ic, std_ic = g["ic"].mean(), g["ic"].std()
        mean_r, std_r = g["rank_ic"].mean(), g["rank_ic"].std()
        eff_n = max(n / max(int(cast(int, horizon)), 1), 1.0)
        rows.append(
            {
                "model_id": model_id,
                "horizon": int(cast(int, horizon)),
                "n_dates": n,
                "mean_ic": mean_ic,
                "std_ic": std_ic,
                "icir": mean_ic / std_ic if std_ic > 0 else np.nan,
                "mean_rank_ic": mean_r,
                "std_rank_ic": std_r,
                "rank_icir": mean_r / std_r if std_r > 0 else np.nan,
                "rank_ic_se": std_r / np.sqrt(eff_n),
            }
        )
    return pd.DataFrame(rows)


def ic_decay(
    scores: pd.DataFrame,
    panel: Panel,
    horizons: Sequence[int] = IC_DECAY_HORIZONS,
    model_label: str | None = None,
) -> pd.DataFrame:
    """:func:`ic_summary` of the scores against raw forward returns at each horizon."""
    frames = []
    for h in horizons:
        fwd = pd.DataFrame(forward_returns(panel, h), index=panel.dates, columns=panel.securities)
        frames.append(ic_by_date(scores, fwd, h, model_label))
    return ic_summary(pd.concat(frames, ignore_index=True))


def quantile_returns(
    scores: pd.DataFrame,
    fwd_returns: pd.DataFrame,
    horizon: int,
    n_quantiles: int = 5,
    model_label: str | None = None,
) -> pd.DataFrame:
    """Per date and model, the mean forward return of each score quantile.

    Quantile of a cell = ceil(rank / n · k) with average ranks over the cells
    where both score and return are finite (1 = lowest scores).
    """
    out = []
    for model_id, group in _groups(scores, model_label):
        dates = pd.DatetimeIndex(group["date"].unique()).sort_values()
        fwd = fwd_returns.reindex(index=dates)
        s = _wide_scores(group, fwd).to_numpy(dtype=np.float64)
        r = fwd.to_numpy(dtype=np.float64)
        ok = np.isfinite(s) & np.isfinite(r)
        ranks = rankdata(np.where(ok, s, np.nan), axis=1, nan_policy="omit")
        n = ok.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            q = np.ceil(ranks / n * n_quantiles)
        for k in range(1, n_quantiles + 1):
            in_q = ok & (q == k)
            cnt = in_q.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(in_q, r, 0.0).sum(axis=1) / cnt
            out.append(
                pd.DataFrame(
                    {
                        "date": dates,
                        "model_id": model_id,
                        "horizon": horizon,
                        "quantile": k,
                        "mean_return": np.where(cnt > 0, mean, np.nan),
                        "n": cnt,
                    }
                )
            )
    frame = pd.concat(out, ignore_index=True)
    return (
        frame[frame["n"] > 0].sort_values(["model_id", "date", "quantile"]).reset_index(drop=True)
    )


def quantile_summary(qret: pd.DataFrame) -> pd.DataFrame:
    """Mean per-date quantile returns, plus the top-minus-bottom spread ``"Qk-Q1"``."""
    rows = []
    for (model_id, horizon), g in qret.groupby(["model_id", "horizon"], sort=True):
        wide = g.pivot(index="date", columns="quantile", values="mean_return")
        k_max, k_min = int(wide.columns.max()), int(wide.columns.min())
        wide[f"Q{k_max}-Q{k_min}"] = wide[k_max] - wide[k_min]
        for col in wide.columns:
            series = wide[col].dropna()
            rows.append(
                {
                    "model_id": model_id,
                    "horizon": int(cast(int, horizon)),
                    "quantile": col if isinstance(col, str) else f"Q{int(col)}",
                    "mean_return": series.mean(),
                    "std_return": series.std(),
                    "n_dates": len(series),
                }
            )
    return pd.DataFrame(rows)


#: Rows the mean |contribution| is estimated on: SHAP-style contributions cost a tree
#: walk per row and feature (measured: 8 s of a 22 s retrain on the demo's 31k
#: validation rows); 5,000 evenly spaced rows give the same ranking.
IMPORTANCE_SAMPLE = 5_000


def even_sample(X: np.ndarray, n: int) -> np.ndarray:
    """At most ``n`` rows of ``X``, evenly spaced from first to last (deterministic: the
    same matrix gives the same sample), in their order."""
    if len(X) <= n:
        return X
    return X[np.linspace(0, len(X) - 1, n).round().astype(np.int64)]


def feature_importance(
    model: Model,
    X_sample: np.ndarray,
    feature_names: Sequence[str],
    model_id: str,
) -> pd.DataFrame:
    """Gain / split importance and mean |contribution| (SHAP-style) per feature.

    ``X_sample`` is a representative sample of feature rows (e.g. the test
    segment or a random subset of training rows); the contribution matrix is
    (n, F + 1) with the last column the expected value, which is dropped.
    """
    gain = model.feature_importance("gain")
    split = model.feature_importance("split")
    contrib = model.contributions(X_sample)
    total = gain.sum()
    return (
        pd.DataFrame(
            {
                "model_id": model_id,
                "feature": list(feature_names),
                "gain": gain,
                "split": split,
                "gain_share": gain / total if total > 0 else np.nan,
                "mean_abs_contrib": np.abs(contrib).mean(axis=0) if len(contrib) else np.nan,
            }
        )
        .sort_values("gain", ascending=False)
        .reset_index(drop=True)
    )


def skipped_feature_rows(skips: Iterable[FeatureSkip], model_id: str = "") -> pd.DataFrame:
    """``research_diagnostics`` rows (without ``valid_date``/``known_at``) for ``skips``.

    ``model_id`` is the model trained without them ("" for the features stage).
    """
    items = list(skips)
    return pd.DataFrame(
        {
            "model_id": pd.Series([model_id] * len(items), dtype=object),
            "kind": SKIPPED_FEATURE_KIND,
            "name": pd.Series([s.feature for s in items], dtype=object),
            "horizon": np.zeros(len(items), dtype=np.int32),
            "bucket": pd.Series([s.reason for s in items], dtype=object),
            "value": np.full(len(items), np.nan),
            "n": np.zeros(len(items), dtype=np.int64),
        }
    )


def skipped_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (feature, reason) of stored skip rows ``[date, name, bucket, ...]``:
    ``[feature, reason, first_date, last_date, sessions]``, by feature."""
    columns = ["feature", "reason", "first_date", "last_date", "sessions"]
    if not len(rows):
        return pd.DataFrame(columns=columns)
    out = (
        rows.groupby(["name", "bucket"], as_index=False)
        .agg(
            first_date=("date", "min"),
            last_date=("date", "max"),
            sessions=("date", "nunique"),
        )
        .rename(columns={"name": "feature", "bucket": "reason"})
    )
    out["first_date"] = pd.to_datetime(out["first_date"]).dt.date
    out["last_date"] = pd.to_datetime(out["last_date"]).dt.date
    return out[columns].sort_values(["feature", "first_date"]).reset_index(drop=True)
