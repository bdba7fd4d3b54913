"""The record of one trained model: what the lake registry stores (:mod:`models.lake_store`).

``model_id`` is a content hash of everything that determines the model
(artifact text, params, features, label, training/validation windows, and the
content hash of the training rows as known at the training cutoff) — not of
``created_at``, metrics or the lake's Delta versions — so rebuilding a model from
its record reproduces the same id, and data landing after the cutoff (which the
model never saw) does not change it. ``model`` names the implementation in
:data:`models.factory.MODELS` that reads the artifact back.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from models.base import ModelSpec


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class ModelRecord:
    """Everything needed to audit and rebuild one trained model.

    ``metrics`` holds at least ``oos_rank_ic`` once evaluated (mean out-of-sample
    rank IC). ``inputs_hash`` is the content hash of the rows the model was fit on
    (:meth:`pipelines.pit.dataset.ResearchDataset.digest`), ``inputs_known_at`` the
    knowledge time they were read at (ISO; what a rebuild reads the lake as of).
    ``input_versions`` (Delta versions) is only read from records written before
    ``inputs_hash`` existed; it is not part of the id.
    """

    model_id: str
    created_at: datetime
    train_start: str
    train_end: str
    valid_start: str | None
    valid_end: str | None
    features: tuple[str, ...]
    label: str
    params: dict[str, Any]
    booster: str  # the artifact (:meth:`models.base.Model.to_artifact`)
    metrics: dict[str, float] = field(default_factory=dict)
    input_versions: dict[str, int] = field(default_factory=dict)
    model: str = "lgbm"
    inputs_hash: str = ""
    inputs_known_at: str | None = None

    @staticmethod
    def content_hash(
        *,
        booster: str,
        params: dict[str, Any],
        features: tuple[str, ...] | list[str],
        label: str,
        windows: tuple[str | None, ...],
        inputs_hash: str,
    ) -> str:
        """sha256 over the canonical JSON of the model-determining content (first 16 hex)."""
        payload = _canonical(
            {
                "booster": booster,
                "params": params,
                "features": list(features),
                "label": label,
                "windows": list(windows),
                "inputs": inputs_hash,
            }
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    @classmethod
    def create(
        cls,
        *,
        booster: str,
        params: dict[str, Any],
        features: tuple[str, ...] | list[str],
        label: str,
        train_start: str,
        train_end: str,
        valid_start: str | None = None,
        valid_end: str | None = None,
        inputs_hash: str = "",
        inputs_known_at: str | None = None,
        metrics: dict[str, float] | None = None,
        created_at: datetime | None = None,
        model: str = "lgbm",
    ) -> ModelRecord:
        """Build a record, deriving ``model_id`` from the content."""
        windows = (train_start, train_end, valid_start, valid_end)
        return cls(
            model_id=cls.content_hash(
                booster=booster,
                params=params,
                features=features,
                label=label,
                windows=windows,
                inputs_hash=inputs_hash,
            ),
            created_at=created_at or datetime.now(UTC),
            train_start=train_start,
            train_end=train_end,
            valid_start=valid_start,
            valid_end=valid_end,
            features=tuple(features),
            label=label,
            params=dict(params),
            booster=booster,
            metrics=dict(metrics or {}),
            model=model,
            inputs_hash=inputs_hash,
            inputs_known_at=inputs_known_at,
        )

    @property
    def spec(self) -> ModelSpec:
        """The model's name and parameters (to restore or re-fit it)."""
        return ModelSpec(self.model, self.params)

    def with_metrics(self, **metrics: float) -> ModelRecord:
        """A copy with metrics merged in (the id does not change)."""
        return ModelRecord(**{**asdict(self), "metrics": {**self.metrics, **metrics}})

    def to_json(self) -> str:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        data["features"] = list(self.features)
        return json.dumps(data, sort_keys=True, indent=1)

    @classmethod
    def from_json(cls, text: str) -> ModelRecord:
        data = json.loads(text)
        data["created_at"] = datetime.fromisoformat(data["created_at"])
        data["features"] = tuple(data["features"])
        return cls(**data)
