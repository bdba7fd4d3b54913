"""What a registered feature is: :class:`FeatureSpec`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from pipelines.errors import AlphaFactoryError
from pipelines.pit.panel import Panel

FeatureFunc = Callable[[Panel], "np.ndarray | pd.DataFrame"]


class FeatureDefinitionError(AlphaFactoryError, ValueError):
    """A feature is declared or behaves against its contract (name, lookback, SQL header,
    output shape or columns)."""


@dataclass(frozen=True)
class FeatureSpec:
    """A registered feature.

    ``lookback`` is in trading days: the value at date D may read panel rows
    ``[D − lookback, D]`` and nothing else (so a mapped daily task loads exactly
    ``lookback + 1`` rows). ``inputs`` are the panel fields it reads; it is
    computed on a panel restricted to them. Exactly one of ``func`` (Python)
    and ``sql`` (DuckDB over the long view ``panel``) is set.
    """

    name: str
    inputs: tuple[str, ...]
    lookback: int
    kind: Literal["python", "sql"]
    source: str
    description: str = ""
    func: FeatureFunc | None = None
    sql: str | None = None

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise FeatureDefinitionError(f"feature name {self.name!r} must be an identifier")
        if self.lookback < 0:
            raise FeatureDefinitionError(f"feature {self.name}: lookback must be >= 0")
        if (self.func is None) == (self.sql is None):
            raise FeatureDefinitionError(
                f"feature {self.name}: exactly one of func / sql must be set"
            )
