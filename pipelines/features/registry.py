"""The feature registry: ``@feature`` functions and ``sql/features/*.sql`` files.

Adding a feature is all a quant does:

* Python: a function ``(panel) -> (T, N) array`` decorated with
  ``@feature(name=..., inputs=[...], lookback=...)`` in any module under
  :mod:`pipelines.features.library` (every module there is imported), or
* SQL: a file in ``sql/features/`` (see :mod:`pipelines.features.sql`).

Extra directories (``.py`` modules and ``.sql`` files) can be added with
``registry(extra_dirs=...)`` or the ``ALPHAFACTORY_FEATURE_PATHS`` setting
(:attr:`pipelines.config.Settings.feature_paths`, ``os.pathsep``-separated), e.g. for tests or a research sandbox.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import pkgutil
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

from pipelines.config import get_settings
from pipelines.errors import AlphaFactoryError
from pipelines.features.spec import FeatureDefinitionError, FeatureFunc, FeatureSpec
from pipelines.features.sql import parse_sql_feature, run_sql_feature
from pipelines.pit.panel import Panel, wide

LIBRARY_PACKAGE = "pipelines.features.library"
SQL_DIR = Path(__file__).resolve().parents[2] / "sql" / "features"

_PYTHON: dict[str, FeatureSpec] = {}
_IMPORTED_FILES: dict[Path, float] = {}


class DuplicateFeatureError(AlphaFactoryError, ValueError):
    """Two different definitions claim the same feature name."""


class UnknownFeatureError(AlphaFactoryError, KeyError):
    """A feature name that is not registered."""


F = TypeVar("F", bound=FeatureFunc)


def feature(
    name: str, inputs: Sequence[str], lookback: int, description: str = ""
) -> Callable[[F], F]:
    """Register ``func(panel) -> (T, N) array | wide DataFrame`` as feature ``name``.

    The function promises: row t of its output depends only on panel rows
    ``[t − lookback, t]`` of the declared ``inputs``. It is handed a panel
    restricted to those inputs (reading anything else raises).
    """

    def register(func: F) -> F:
        source = f"{func.__module__}.{func.__qualname__}"
        spec = FeatureSpec(
            name=name,
            inputs=tuple(inputs),
            lookback=int(lookback),
            kind="python",
            source=source,
            description=description or (func.__doc__ or "").strip().split("\n")[0],
            func=func,
        )
        existing = _PYTHON.get(name)
        if existing is not None and existing.source != source:
            raise DuplicateFeatureError(f"feature {name!r} already defined by {existing.source}")
        _PYTHON[name] = spec
        return func

    return register


def unregister(name: str) -> None:
    """Forget a Python feature (for tests and sandboxes)."""
    _PYTHON.pop(name, None)


def _import_library() -> None:
    package = importlib.import_module(LIBRARY_PACKAGE)
    for info in pkgutil.walk_packages(package.__path__, prefix=f"{LIBRARY_PACKAGE}."):
        importlib.import_module(info.name)


def _import_file(path: Path) -> None:
    """Import a standalone feature module once per (path, mtime)."""
    mtime = path.stat().st_mtime
    if _IMPORTED_FILES.get(path) == mtime:
        return
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    mod_name = f"alphafactory_extra_features.{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import feature module {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    spec.loader.exec_module(module)
    _IMPORTED_FILES[path] = mtime


def _extra_dirs(extra_dirs: Iterable[str | Path]) -> list[Path]:
    configured = [p for p in get_settings().feature_paths.split(os.pathsep) if p]
    return [Path(p).resolve() for p in [*configured, *extra_dirs]]


def registry(extra_dirs: Iterable[str | Path] = ()) -> dict[str, FeatureSpec]:
    """All features by name: library modules, ``sql/features``, then extra directories.

    Raises :class:`DuplicateFeatureError` when a name is defined twice.
    """
    _import_library()
    dirs = _extra_dirs(extra_dirs)
    for d in dirs:
        for path in sorted(d.glob("*.py")):
            _import_file(path)
    specs = dict(_PYTHON)
    for d in [SQL_DIR, *dirs]:
        for path in sorted(d.glob("*.sql")) if d.is_dir() else []:
            spec = parse_sql_feature(path)
            if spec.name in specs:
                raise DuplicateFeatureError(
                    f"feature {spec.name!r} in {path} already defined by {specs[spec.name].source}"
                )
            specs[spec.name] = spec
    return dict(sorted(specs.items()))


def _evaluate(spec: FeatureSpec, panel: Panel) -> np.ndarray:
    restricted = panel.select(spec.inputs)
    if spec.func is not None:
        out = spec.func(restricted)
        values = out.to_numpy(dtype=np.float64) if isinstance(out, pd.DataFrame) else out
    else:
        values = run_sql_feature(spec, restricted)
    values = np.asarray(values, dtype=np.float64)
    if values.shape != panel.shape:
        raise FeatureDefinitionError(
            f"feature {spec.name} returned shape {values.shape}, want {panel.shape}"
        )
    return values


def compute_feature(
    name: str | FeatureSpec,
    panel: Panel,
    dates: Sequence[pd.Timestamp] | pd.DatetimeIndex | None = None,
    specs: Mapping[str, FeatureSpec] | None = None,
) -> pd.DataFrame:
    """The feature as a wide DataFrame (dates x securities).

    With ``dates=None`` every panel date is computed. Otherwise only the panel
    window ``[min(dates) − lookback, max(dates)]`` is read and the requested rows
    are returned; by the lookback contract this equals the full-history
    computation bit for bit (rows with less than ``lookback`` days of history
    are NaN-padded identically in both cases).
    """
    if isinstance(name, FeatureSpec):
        spec = name
    else:
        table = specs if specs is not None else registry()
        if name not in table:
            raise UnknownFeatureError(f"unknown feature {name!r}")
        spec = table[name]
    if dates is None:
        return wide(_evaluate(spec, panel), panel)
    wanted = dates if isinstance(dates, pd.DatetimeIndex) else pd.DatetimeIndex(list(dates))
    pos = panel.dates.get_indexer(wanted)
    if (pos < 0).any():
        raise KeyError(f"dates not in panel: {list(wanted[pos < 0])}")
    sub = panel.iloc(int(pos.min()) - spec.lookback, int(pos.max()) + 1)
    values = _evaluate(spec, sub)
    return wide(values, sub).iloc[sub.dates.get_indexer(wanted)]


def compute_features(
    names: Sequence[str] | None,
    panel: Panel,
    specs: Mapping[str, FeatureSpec] | None = None,
) -> dict[str, pd.DataFrame]:
    """Several features over the full panel (sharing the panel's derived-array cache)."""
    table = specs if specs is not None else registry()
    chosen = list(table) if names is None else list(names)
    return {n: compute_feature(table[n], panel) for n in chosen}
