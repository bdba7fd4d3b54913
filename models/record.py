"""The record of one trained model: what the lake registry stores (:mod:`models.lake_store`).

``model_id`` is a content hash of everything that determines the model
(artifact text, params, features, label, training/validation windows, input
table versions) — not of ``created_at`` or metrics — so rebuilding a model
from its record reproduces the same id. ``model`` names the implementation in
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
    rank IC). ``input_versions`` maps lake table name → Delta version, as passed
    by the caller.
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

    @staticmethod
    def content_hash(
        *,
        booster: str,
        params: dict[str, Any],
        features: tuple[str, ...] | list[str],
        label: str,
        windows: tuple[str | None, ...],
        input_versions: dict[str, int],
    ) -> str:
        """sha256 over the canonical JSON of the model-determining content (first 16 hex)."""
        payload = _canonical(
            {
                "booster": booster,
                "params": params,
                "features": list(features),
                "label": label,
                "windows": list(windows),
                "input_versions": input_versions,
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
        input_versions: dict[str, int] | None = None,
        metrics: dict[str, float] | None = None,
        created_at: datetime | None = None,
        model: str = "lgbm",
    ) -> ModelRecord:
        """Build a record, deriving ``model_id`` from the content."""
        versions = dict(input_versions or {})
        windows = (train_start, train_end, valid_start, valid_end)
        return cls(
            model_id=cls.content_hash(
                booster=booster,
                params=params,
                features=features,
                label=label,
                windows=windows,
                input_versions=versions,
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
            input_versions=versions,
            model=model,
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
