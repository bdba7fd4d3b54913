"""Models by name: the one place a model implementation is chosen.

Research configuration says ``model="lgbm"`` (and the model's parameters); the registry
records the name with each trained model, so scoring and rebuilding restore the right
implementation. Adding a model is one class implementing :class:`~models.base.Model` plus
one line in :data:`MODELS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from models.base import Model, ModelSpec
from models.lgbm import LGBModel
from pipelines.errors import ConfigurationError


class ModelClass(Protocol):
    """How a model implementation is built: fresh from parameters, or from its artifact."""

    def from_params(self, params: Mapping[str, Any]) -> Model: ...

    def from_artifact(self, artifact: str, params: Mapping[str, Any]) -> Model: ...


#: Every model implementation, by the name configurations and registry records use.
MODELS: Mapping[str, ModelClass] = {
    "lgbm": LGBModel,
}


class UnknownModelError(ConfigurationError):
    """A model name that is not in :data:`MODELS`."""


def model_class(name: str) -> ModelClass:
    """The implementation registered as ``name``."""
    try:
        return MODELS[name]
    except KeyError:
        raise UnknownModelError(f"unknown model {name!r} (registered: {sorted(MODELS)})") from None


def create_model(spec: ModelSpec) -> Model:
    """An unfitted model of ``spec``."""
    return model_class(spec.name).from_params(spec.params)


def restore_model(spec: ModelSpec, artifact: str) -> Model:
    """A fitted model back from its artifact (:meth:`~models.base.Model.to_artifact`)."""
    return model_class(spec.name).from_artifact(artifact, spec.params)
