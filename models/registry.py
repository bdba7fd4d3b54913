"""Model records, the :class:`ModelStore` protocol and champion/challenger promotion.

``model_id`` is a content hash of everything that determines the model
(booster text, params, features, label, training/validation windows, input
table versions) — not of ``created_at`` or metrics — so rebuilding a model
from its record reproduces the same id.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


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
    booster: str
    metrics: dict[str, float] = field(default_factory=dict)
    input_versions: dict[str, int] = field(default_factory=dict)

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
        )

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


@runtime_checkable
class ModelStore(Protocol):
    """Where model records live (local directory here; the lead adds a lake-backed one)."""

    def save(self, record: ModelRecord) -> None: ...

    def load(self, model_id: str) -> ModelRecord: ...

    def list(self) -> list[ModelRecord]: ...

    def champion(self) -> ModelRecord | None: ...

    def set_champion(self, model_id: str) -> None: ...


def _atomic_write(path: Path, text: str) -> None:
    # write-then-rename so a crash never leaves a half-written record
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


class LocalModelStore:
    """One ``<model_id>.json`` per record plus ``CHAMPION`` holding the champion's id."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def save(self, record: ModelRecord) -> None:
        _atomic_write(self.root / f"{record.model_id}.json", record.to_json())

    def load(self, model_id: str) -> ModelRecord:
        path = self.root / f"{model_id}.json"
        if not path.exists():
            raise KeyError(f"no model {model_id!r} in {self.root}")
        return ModelRecord.from_json(path.read_text())

    def list(self) -> list[ModelRecord]:
        records = [ModelRecord.from_json(p.read_text()) for p in self.root.glob("*.json")]
        return sorted(records, key=lambda r: (r.created_at, r.model_id))

    def champion(self) -> ModelRecord | None:
        marker = self.root / "CHAMPION"
        return self.load(marker.read_text().strip()) if marker.exists() else None

    def set_champion(self, model_id: str) -> None:
        self.load(model_id)  # must exist
        _atomic_write(self.root / "CHAMPION", model_id)


@dataclass(frozen=True)
class ChampionPolicy:
    """A challenger replaces the champion iff challenger[metric] > champion[metric] + margin."""

    metric: str = "oos_rank_ic"
    margin: float = 0.005


@dataclass(frozen=True)
class PromotionDecision:
    promoted: bool
    reason: str
    challenger_id: str
    champion_id: str | None
    challenger_metric: float
    champion_metric: float | None


def promote_if_better(
    store: ModelStore, challenger: ModelRecord, policy: ChampionPolicy | None = None
) -> PromotionDecision:
    """Save the challenger; make it champion if there is none or it beats the champion by the margin."""
    policy = policy or ChampionPolicy()
    if policy.metric not in challenger.metrics:
        raise ValueError(f"challenger {challenger.model_id} has no {policy.metric!r} metric")
    store.save(challenger)
    value = float(challenger.metrics[policy.metric])
    champ = store.champion()
    if champ is None:
        store.set_champion(challenger.model_id)
        return PromotionDecision(True, "no champion", challenger.model_id, None, value, None)
    champ_value = float(champ.metrics.get(policy.metric, float("-inf")))
    if value > champ_value + policy.margin:
        store.set_champion(challenger.model_id)
        reason = f"{policy.metric} {value:.4f} > {champ_value:.4f} + {policy.margin}"
        return PromotionDecision(
            True, reason, challenger.model_id, champ.model_id, value, champ_value
        )
    reason = f"{policy.metric} {value:.4f} <= {champ_value:.4f} + {policy.margin}"
    return PromotionDecision(False, reason, challenger.model_id, champ.model_id, value, champ_value)
