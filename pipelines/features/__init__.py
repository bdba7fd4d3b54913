"""Feature registry and library.

Public API::

    from pipelines.features import feature, registry, compute_feature, FeatureSpec
"""

from pipelines.features.registry import (
    DuplicateFeatureError,
    UnknownFeatureError,
    compute_feature,
    compute_features,
    feature,
    registry,
    unregister,
)
from pipelines.features.spec import FeatureSpec

__all__ = [
    "DuplicateFeatureError",
    "FeatureSpec",
    "UnknownFeatureError",
    "compute_feature",
    "compute_features",
    "feature",
    "registry",
    "unregister",
]
