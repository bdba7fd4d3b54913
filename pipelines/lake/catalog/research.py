"""The research stage's lake tables (written by :mod:`pipelines.research`).

All are bitemporal POINT tables. ``valid_date`` is the session a row is *about* (the
universe/feature/score date, a model's fit date, a diagnostic's score date) and
``known_at`` is the research knowledge time of the run that produced it
(the session's decision cutoff, :func:`pipelines.timeline.decision_cutoff`), so a re-run for the same session writes the
same rows with the same batch id and adds nothing, and ``Lake.as_of`` answers "which
scores / which champion did we have at T" exactly.
"""

from __future__ import annotations

import pyarrow as pa

from pipelines.lake.spec import TableSpec, column

UNIVERSE = TableSpec(
    name="universe",
    description="Tradable universe per session: listed (security master as known then), price and liquidity floors.",
    key=("security_id",),
    fields=(
        column("security_id", pa.string(), False),
        column("sector", pa.string()),
        column("close", pa.float64(), doc="raw close"),
        column("adv_21d", pa.float64(), doc="21-session mean dollar volume"),
        column("market_cap", pa.float64()),
    ),
    partitioned=True,
    zorder=("valid_date",),
    valid_time_meaning="session the membership is for",
)

FEATURES = TableSpec(
    name="features",
    description="Raw (un-normalized) feature values of universe members, long: one row per (security, feature, session).",
    key=("security_id", "feature"),
    fields=(
        column("security_id", pa.string(), False),
        column("feature", pa.string(), False, "registered feature name"),
        column("value", pa.float64(), False),
    ),
    partitioned=True,
    zorder=("valid_date",),
    valid_time_meaning="session the feature value is for",
)

LABELS = TableSpec(
    name="labels",
    description="Forward returns over (t, t+h] of universe members at t; known_at = when t+h closed.",
    key=("security_id", "label"),
    fields=(
        column("security_id", pa.string(), False),
        column("label", pa.string(), False, "e.g. fwd_ret_5d_market"),
        column("horizon", pa.int32(), False),
        column("value", pa.float64(), False),
    ),
    partitioned=True,
    zorder=("valid_date",),
    valid_time_meaning="label date t (the return starts after its close)",
)

ALPHA_SCORES = TableSpec(
    name="alpha_scores",
    description="Daily model scores of universe members, with the id of the model that produced each.",
    key=("security_id",),
    fields=(
        column("security_id", pa.string(), False),
        column("score", pa.float64(), False),
        column("model_id", pa.string(), False),
    ),
    partitioned=True,
    zorder=("valid_date",),
    valid_time_meaning="session scored (at its close)",
)

MODEL_REGISTRY = TableSpec(
    name="model_registry",
    description="Every trained model: artifact (LightGBM text) and everything needed to rebuild it.",
    key=("model_id",),
    fields=(
        column("model_id", pa.string(), False, "content hash of the model-determining inputs"),
        column("created_at", pa.timestamp("us", tz="UTC"), False),
        column("panel_start", pa.date32(), False, "first session of the training panel"),
        column("train_start", pa.date32(), False),
        column("train_end", pa.date32(), False),
        column("valid_start", pa.date32()),
        column("valid_end", pa.date32()),
        column("features", pa.string(), False, "JSON list, in model column order"),
        column("label", pa.string(), False),
        column("params", pa.string(), False, "JSON object (LightGBM params + rounds)"),
        column("metrics", pa.string(), False, "JSON object, e.g. oos_rank_ic"),
        column("input_versions", pa.string(), False, "JSON: lake table -> Delta version"),
        column("booster", pa.string(), False, "the artifact: LightGBM model text"),
        column("record", pa.string(), False, "the full ModelRecord JSON"),
    ),
    valid_time_meaning="fit session (the model scores from this session's close on)",
)

MODEL_CHAMPION = TableSpec(
    name="model_champion",
    description="Champion/challenger decisions: which model scores from each retrain session on.",
    key=("slot",),
    fields=(
        column("slot", pa.string(), False, "model slot, e.g. 'alpha'"),
        column("model_id", pa.string(), False, "champion after this decision"),
        column("challenger_id", pa.string(), False),
        column("promoted", pa.bool_(), False),
        column("reason", pa.string(), False),
        column("challenger_metric", pa.float64()),
        column("champion_metric", pa.float64()),
    ),
    valid_time_meaning="session of the decision",
)

RESEARCH_DIAGNOSTICS = TableSpec(
    name="research_diagnostics",
    description="Signal diagnostics per score date and model: IC, rank IC, quantile returns, importances.",
    key=("model_id", "kind", "name", "horizon", "bucket"),
    fields=(
        column("model_id", pa.string(), False),
        column("kind", pa.string(), False, "ic | quantile | importance | skipped_feature"),
        column("name", pa.string(), False, "ic, rank_ic, mean_return, or a feature name"),
        column("horizon", pa.int32(), False, "forward-return horizon in sessions (0 = n/a)"),
        column("bucket", pa.string(), False, "Q1..Qk, Qk-Q1, gain, split, pred_contrib, or ''"),
        column("value", pa.float64()),
        column("n", pa.int64(), doc="cross-section size"),
    ),
    valid_time_meaning="score date (ic/quantile) or fit session (importance)",
)

RESEARCH_TABLES: tuple[str, ...] = (
    UNIVERSE.name,
    FEATURES.name,
    LABELS.name,
    ALPHA_SCORES.name,
    MODEL_REGISTRY.name,
    MODEL_CHAMPION.name,
    RESEARCH_DIAGNOSTICS.name,
)
