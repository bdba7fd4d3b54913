"""Fault knobs: a per-business-day plan of things that go wrong at the vendor.

Kinds (``Fault``) and what they do to the day's SFTP folder:

``late``               the folder is published ``hours`` after the normal publish time.
``missing``            the folder never appears.
``truncated_gzip``     ``file`` (default ``prices.csv.gz``) is cut to ``fraction`` of its bytes;
                       the manifest describes the truncated bytes (the vendor checksummed what it
                       sent), so only decompression fails.
``checksum_mismatch``  the manifest's sha256 for ``file`` is wrong (file bytes are fine).
``schema_rename``      column ``column`` (default ``PX_LAST``) is renamed to ``new_name``
                       (default ``PX_CLOSE``) in ``prices.csv.gz``.
``schema_retype``      column ``column`` (default ``PX_LAST``) is written as text with a currency
                       suffix, e.g. ``12.3400USD``, in every row.
``duplicate_rows``     ``rows`` data rows of ``prices.csv.gz`` are appended again at the end.
``impossible_values``  ``rows`` data rows get, cycling: a negative ``PX_LAST``, ``PX_HIGH`` <
                       ``PX_LOW`` (high and low swapped), a negative ``PX_VOLUME``.
``correction``         ``rows`` rows of the day's ``prices.csv.gz`` carry a wrong ``PX_LAST``
                       (+5%, high/low widened to stay consistent); the next session's folder
                       carries ``prices_correction_<D>.csv.gz`` with the true rows.

Row choices are deterministic from (seed, date, kind) so tests can assert exact rows; the
simulator reports them via :meth:`VendorSimulator.fault_effects`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import yaml


class Fault(StrEnum):
    """The kinds of vendor faults the simulator can inject."""

    LATE = "late"
    MISSING = "missing"
    TRUNCATED_GZIP = "truncated_gzip"
    CHECKSUM_MISMATCH = "checksum_mismatch"
    SCHEMA_RENAME = "schema_rename"
    SCHEMA_RETYPE = "schema_retype"
    DUPLICATE_ROWS = "duplicate_rows"
    IMPOSSIBLE_VALUES = "impossible_values"
    CORRECTION = "correction"


ROW_FAULTS = (Fault.CORRECTION, Fault.IMPOSSIBLE_VALUES, Fault.DUPLICATE_ROWS)


@dataclass(frozen=True)
class FaultSpec:
    """One fault on one day, with its parameters (unused ones are ignored)."""

    kind: Fault
    hours: float = 3.0
    rows: int = 3
    file: str = "prices.csv.gz"
    column: str = "PX_LAST"
    new_name: str = "PX_CLOSE"
    fraction: float = 0.5

    def to_dict(self) -> dict[str, Any]:
        """Only the parameters that matter for this kind (stable, for fingerprints/YAML)."""
        params: dict[Fault, tuple[str, ...]] = {
            Fault.LATE: ("hours",),
            Fault.TRUNCATED_GZIP: ("file", "fraction"),
            Fault.CHECKSUM_MISMATCH: ("file",),
            Fault.SCHEMA_RENAME: ("column", "new_name"),
            Fault.SCHEMA_RETYPE: ("column",),
            Fault.DUPLICATE_ROWS: ("rows",),
            Fault.IMPOSSIBLE_VALUES: ("rows",),
            Fault.CORRECTION: ("rows",),
        }
        return {"kind": self.kind.value} | {k: getattr(self, k) for k in params.get(self.kind, ())}


def _parse_spec(item: Any) -> FaultSpec:
    if isinstance(item, str):
        return FaultSpec(Fault(item))
    if isinstance(item, Mapping):
        if "kind" in item:
            kw = dict(item)
            return FaultSpec(kind=Fault(kw.pop("kind")), **kw)
        if len(item) == 1:  # {late: {hours: 3}}
            ((kind, params),) = item.items()
            return FaultSpec(kind=Fault(kind), **dict(params or {}))
    raise ValueError(f"cannot parse fault spec {item!r}")


@dataclass(frozen=True)
class FaultPlan:
    """Business date → faults for that day. Empty plan = a well-behaved vendor."""

    days: Mapping[date, tuple[FaultSpec, ...]] = field(default_factory=dict)

    def on(self, day: date) -> tuple[FaultSpec, ...]:
        """Faults scheduled for ``day`` (empty tuple if none)."""
        return tuple(self.days.get(day, ()))

    def get(self, day: date, kind: Fault) -> FaultSpec | None:
        """The spec of ``kind`` on ``day``, if scheduled."""
        return next((f for f in self.on(day) if f.kind is kind), None)

    def to_dict(self) -> dict[str, list[dict[str, Any]]]:
        """YAML/JSON-friendly form, the inverse of :meth:`from_dict`."""
        return {
            d.isoformat(): [f.to_dict() for f in specs] for d, specs in sorted(self.days.items())
        }

    @classmethod
    def from_dict(cls, data: Mapping[Any, Iterable[Any]]) -> FaultPlan:
        """Parse ``{date: [kind | {kind: {params}} | {kind: ..., params...}]}``.

        A top-level ``{"faults": {...}}`` wrapper is accepted too.
        """
        if "faults" in data and len(data) == 1:
            data = data["faults"]  # type: ignore[assignment]
        days: dict[date, tuple[FaultSpec, ...]] = {}
        for key, items in data.items():
            day = key if isinstance(key, date) else date.fromisoformat(str(key))
            if isinstance(items, str | Mapping):
                items = [items]
            days[day] = tuple(_parse_spec(i) for i in items)
        return cls(days)

    @classmethod
    def from_yaml(cls, path: str | Path) -> FaultPlan:
        """Load a plan from a YAML file (format: see :meth:`from_dict`)."""
        with open(path, encoding="utf-8") as fh:
            return cls.from_dict(yaml.safe_load(fh) or {})

    @classmethod
    def random(
        cls,
        days: Iterable[date],
        rate: float,
        seed: int,
        kinds: Iterable[Fault] = tuple(Fault),
    ) -> FaultPlan:
        """Each day independently gets one uniformly chosen fault with probability ``rate``."""
        kinds_t = tuple(kinds)
        days_t = sorted(days)
        rng = np.random.default_rng([seed, 0xFA])
        hit = rng.random(len(days_t)) < rate
        pick = rng.integers(0, len(kinds_t), len(days_t))
        return cls(
            {d: (FaultSpec(kinds_t[k]),) for d, h, k in zip(days_t, hit, pick, strict=True) if h}
        )

    def __bool__(self) -> bool:
        return bool(self.days)


def fault_rng(seed: int, day: date, kind: Fault) -> np.random.Generator:
    """The random stream that chooses affected rows for ``kind`` on ``day``."""
    return np.random.default_rng([seed, 0xFA17, day.toordinal(), list(Fault).index(kind)])


def choose_rows(seed: int, day: date, kind: Fault, n_rows: int, k: int) -> np.ndarray:
    """``k`` distinct row positions in ``range(n_rows)``, sorted, deterministic."""
    k = max(0, min(k, n_rows))
    return np.sort(fault_rng(seed, day, kind).choice(n_rows, size=k, replace=False))


@dataclass(frozen=True)
class FaultEffect:
    """What one fault did to one file: exact data-row positions (0-based, header excluded)."""

    kind: Fault
    file: str
    rows: tuple[int, ...] = ()
    security_ids: tuple[str, ...] = ()
    detail: str = ""


def apply_price_row_faults(
    df: Any, seed: int, day: date, specs: Iterable[FaultSpec]
) -> tuple[Any, list[FaultEffect]]:
    """Apply the row-level faults (correction, impossible values, duplicates) to a prices frame.

    ``df`` is the clean vendor prices frame for ``day`` (numeric PX_ columns). Returns the
    faulty frame and the effects, in application order: correction, impossible values,
    duplicates (duplicates copy already-faulty rows and are appended at the end).
    """
    import pandas as pd  # local: keep this module importable for plan parsing alone

    out: pd.DataFrame = df.copy()
    effects: list[FaultEffect] = []
    by_kind = {s.kind: s for s in specs}
    n = len(out)
    file = "prices.csv.gz"
    if (spec := by_kind.get(Fault.CORRECTION)) is not None:
        rows = choose_rows(seed, day, Fault.CORRECTION, n, spec.rows)
        bad = (out["PX_LAST"].to_numpy()[rows] * 1.05).round(4)
        out.loc[out.index[rows], "PX_LAST"] = bad
        out.loc[out.index[rows], "PX_HIGH"] = np.maximum(out["PX_HIGH"].to_numpy()[rows], bad)
        effects.append(
            FaultEffect(
                Fault.CORRECTION,
                file,
                tuple(int(r) for r in rows),
                tuple(out["SECID"].to_numpy()[rows]),
                "PX_LAST +5%; true rows re-sent next session",
            )
        )
    if (spec := by_kind.get(Fault.IMPOSSIBLE_VALUES)) is not None:
        rows = choose_rows(seed, day, Fault.IMPOSSIBLE_VALUES, n, spec.rows)
        kinds = []
        for j, r in enumerate(rows):
            ix = out.index[r]
            if j % 3 == 0:
                out.loc[ix, "PX_LAST"] = -abs(float(out.loc[ix, "PX_LAST"]))  # type: ignore[arg-type]
                kinds.append("negative PX_LAST")
            elif j % 3 == 1:
                hi, lo = out.loc[ix, "PX_HIGH"], out.loc[ix, "PX_LOW"]
                out.loc[ix, "PX_HIGH"], out.loc[ix, "PX_LOW"] = lo, hi
                kinds.append("PX_HIGH < PX_LOW")
            else:
                out.loc[ix, "PX_VOLUME"] = -abs(int(out.loc[ix, "PX_VOLUME"])) - 1  # type: ignore[call-overload]
                kinds.append("negative PX_VOLUME")
        effects.append(
            FaultEffect(
                Fault.IMPOSSIBLE_VALUES,
                file,
                tuple(int(r) for r in rows),
                tuple(out["SECID"].to_numpy()[rows]),
                "; ".join(kinds),
            )
        )
    if (spec := by_kind.get(Fault.DUPLICATE_ROWS)) is not None:
        rows = choose_rows(seed, day, Fault.DUPLICATE_ROWS, n, spec.rows)
        out = pd.concat([out, out.iloc[rows]], ignore_index=True)
        effects.append(
            FaultEffect(
                Fault.DUPLICATE_ROWS,
                file,
                tuple(range(n, n + len(rows))),
                tuple(out["SECID"].to_numpy()[rows]),
                f"copies of rows {[int(r) for r in rows]} appended",
            )
        )
    return out, effects
