"""Rollout settings: the promotion gates and the canary's size, from a YAML file.

A candidate records the settings it started under (``rollout_events.detail`` of its
``start`` event), so the gates that judge it do not move while it is being judged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipelines.errors import ConfigurationError

DEFAULT_CONFIG_PATH = Path(__file__).with_name("configs") / "default.yaml"


class RolloutConfigError(ConfigurationError):
    """The rollout config file is not acceptable (the message names the file and key)."""


class Gates(BaseModel):
    """Promotion gates, judged daily over the last ``sessions`` sessions of a stage."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sessions: int = Field(default=5, ge=1)
    min_ic: float = 0.0
    max_tracking_error: float = Field(default=0.05, ge=0)
    max_slippage_bps: float = 25.0
    max_pretrade_breaches: int = Field(default=0, ge=0)


class RolloutConfig(BaseModel):
    """Gates, the canary's fraction of production NAV, and whether passing promotes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gates: Gates = Gates()
    canary_fraction: float = Field(default=0.1, gt=0, le=1)
    auto_promote: bool = False

    @classmethod
    def load(cls, path: str | Path | None = None) -> RolloutConfig:
        """The file at ``path`` (default :data:`DEFAULT_CONFIG_PATH`) over the defaults."""
        p = Path(path) if path is not None else DEFAULT_CONFIG_PATH
        try:
            data: Any = yaml.safe_load(p.read_text()) or {}
        except FileNotFoundError:
            raise RolloutConfigError(f"rollout config {p} does not exist") from None
        if not isinstance(data, dict):
            raise RolloutConfigError(f"rollout config {p}: expected a mapping at top level")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(x) for x in first["loc"])
            raise RolloutConfigError(f"rollout config {p}: {key}: {first['msg']}") from None
