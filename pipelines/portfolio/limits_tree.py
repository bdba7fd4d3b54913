"""Hierarchical exposure limits: one declaration read by the optimizer and by pre-trade.

The tree (weights are fractions of NAV; a position's weight is its notional / NAV)::

    portfolio → region → asset class → sector → security

Every node may bound its members' **gross** Σ|w| ≤ g, **net** Σw ∈ [lo, hi], **long**
Σmax(w, 0) ≤ L and **short** Σmax(−w, 0) ≤ S. A limits file declares which levels it
uses (``levels``, a subsequence of :data:`LEVELS`), the portfolio node, a default for
every node of a level (``each``), explicit nodes by path below the portfolio
(``nodes: {"US/equity/Tech": …}``, a node's bounds override its level's default field by
field) and per-security overrides (``securities``). The flat pre-trade format
(``max_gross_exposure``, ``net_exposure``, ``max_sector_exposure``, ``sector_overrides``)
is the one-level tree ``levels: [sector]``
(:func:`pipelines.risk.pretrade.RiskLimits.tree`). A node is the set of securities below
it: in ``levels: [region, asset_class, sector]`` the node ``US/equity/Tech`` is US equity
Tech names, and a sector default (``each: {sector: …}``, or the flat
``max_sector_exposure`` merged into such a tree) bounds each region's and asset class's
slice of a sector, not the sector across regions.

A security's place in the tree comes from its attributes (``region``, ``asset_class``,
``sector``: the security master's columns). The security master carries only ``sector``
today: a missing attribute column puts every security in one node named
:data:`DEFAULT_NODE` at that level, and a security without a value for a present column
goes to :data:`UNASSIGNED`.

The optimizer (:mod:`pipelines.portfolio.optimizer`) turns every node into constraint
rows over a sparse 0/1 membership matrix (never an N×N matrix); pre-trade
(:mod:`pipelines.risk.pretrade`) checks the same nodes, with the same numbers, on the
post-trade book. Both judge a node breached only beyond :data:`LIMIT_TOL`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

#: The levels of the tree below the portfolio, top-down (the security is always last).
LEVELS: tuple[str, ...] = ("region", "asset_class", "sector")
Level = Literal["region", "asset_class", "sector"]
KINDS: tuple[str, ...] = ("gross", "net", "long", "short")
Kind = Literal["gross", "net", "long", "short"]
#: Node of every security at a level whose attribute column the security master lacks.
DEFAULT_NODE = "all"
#: Node of a security whose attribute value is missing.
UNASSIGNED = "unassigned"
ROOT = "portfolio"
#: Tolerance, as a fraction of NAV, beyond which a node counts as breached — in pre-trade
#: and when the optimizer's answer is audited. The optimizer solves against the exact
#: limit (solver residuals ~1e-6); whole-share rounding then moves a node's sum by at most
#: Σ half a lot × price / NAV over its members (≈1.5e-4 for 30 names at $100 on $10M), so
#: 5 bp of NAV keeps a rounded optimal book from being rejected without hiding a real
#: breach.
LIMIT_TOL = 5e-4


class Band(BaseModel):
    """Closed interval ``[lo, hi]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    lo: float
    hi: float

    @model_validator(mode="after")
    def _ordered(self) -> Band:
        if self.lo > self.hi:
            raise ValueError(f"band lo {self.lo} > hi {self.hi}")
        return self


class NodeLimits(BaseModel):
    """Bounds of one node (fractions of NAV); None leaves that exposure unbounded."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    gross: float | None = Field(default=None, ge=0)
    net: Band | None = None
    long: float | None = Field(default=None, ge=0)
    short: float | None = Field(default=None, ge=0)

    def over(self, base: NodeLimits | None) -> NodeLimits:
        """These bounds, each missing one taken from ``base``."""
        if base is None:
            return self
        return NodeLimits(
            gross=self.gross if self.gross is not None else base.gross,
            net=self.net if self.net is not None else base.net,
            long=self.long if self.long is not None else base.long,
            short=self.short if self.short is not None else base.short,
        )

    @property
    def empty(self) -> bool:
        return self.gross is None and self.net is None and self.long is None and self.short is None

    def upper(self, kind: str) -> float:
        """Upper bound of ``kind`` (inf when unbounded)."""
        if kind == "net":
            return self.net.hi if self.net is not None else np.inf
        v = getattr(self, kind)
        return float(v) if v is not None else np.inf

    def lower(self, kind: str) -> float:
        """Lower bound of ``kind`` (−inf when unbounded; only net has one)."""
        if kind == "net" and self.net is not None:
            return self.net.lo
        return -np.inf

    def bounded(self, kind: str) -> bool:
        return getattr(self, kind) is not None


class LimitTree(BaseModel):
    """The declaration (see module docstring); ``levels`` default to ``[sector]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    levels: tuple[Level, ...] = ("sector",)
    portfolio: NodeLimits = NodeLimits()
    each: dict[str, NodeLimits] = Field(default_factory=dict)
    nodes: dict[str, NodeLimits] = Field(default_factory=dict)
    securities: dict[str, NodeLimits] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _valid(self) -> LimitTree:
        order = [LEVELS.index(lv) for lv in self.levels]
        if order != sorted(set(order)):
            raise ValueError(f"levels {list(self.levels)} must be distinct and ordered as {LEVELS}")
        allowed = {*self.levels, "security"}
        unknown = set(self.each) - allowed
        if unknown:
            raise ValueError(f"each: {sorted(unknown)} not among the levels {sorted(allowed)}")
        for path in self.nodes:
            parts = path.split("/")
            if not 1 <= len(parts) <= len(self.levels) or not all(parts):
                raise ValueError(
                    f"node {path!r}: a path of 1 to {len(self.levels)} names below "
                    f"{ROOT} ({'/'.join(self.levels)})"
                )
        return self

    def node_limits(self, path: tuple[str, ...]) -> NodeLimits:
        """Bounds of the node at ``path`` below the portfolio (() is the portfolio)."""
        if not path:
            return self.portfolio
        own = self.nodes.get("/".join(path))
        base = self.each.get(self.levels[len(path) - 1])
        return own.over(base) if own is not None else (base or NodeLimits())

    def security_limits(self, security_id: str) -> NodeLimits:
        own = self.securities.get(security_id)
        base = self.each.get("security")
        return own.over(base) if own is not None else (base or NodeLimits())

    def path_of(self, attributes: Mapping[str, object]) -> tuple[str, ...]:
        """A security's path below the portfolio from its attributes (module docstring)."""
        out = []
        for level in self.levels:
            if level not in attributes:
                out.append(DEFAULT_NODE)
                continue
            v = attributes[level]
            out.append(UNASSIGNED if v is None or (isinstance(v, float) and v != v) else str(v))
        return tuple(out)

    def chain(self, attributes: Mapping[str, object]) -> Iterator[tuple[str, str, NodeLimits]]:
        """(node path, level, bounds) of every bounded group node a security belongs to,
        portfolio first (the security's own limits: :meth:`security_limits`)."""
        path = self.path_of(attributes)
        for depth in range(len(path) + 1):
            lim = self.node_limits(path[:depth])
            if not lim.empty:
                level = ROOT if depth == 0 else self.levels[depth - 1]
                yield node_name(path[:depth]), level, lim


def node_name(path: Sequence[str]) -> str:
    """``portfolio/US/equity/Tech``: how a node is named in messages and audits."""
    return "/".join((ROOT, *path))


def rule_name(level: str, kind: str) -> str:
    """Pre-trade rule of a node's bound; the flat format's names are kept
    (``max_gross_exposure``, ``net_exposure``, ``sector_exposure``)."""
    if level == ROOT:
        return {"gross": "max_gross_exposure", "net": "net_exposure"}.get(kind, f"{kind}_exposure")
    return f"{level}_exposure" if kind == "net" else f"{level}_{kind}"


def exposure(kind: str, w: np.ndarray | float) -> np.ndarray:
    """Per-name contribution of weights ``w`` to a node's ``kind`` sum."""
    a = np.asarray(w, dtype=float)
    if kind == "net":
        return a
    if kind == "gross":
        return np.abs(a)
    if kind == "long":
        return np.maximum(a, 0.0)
    return np.maximum(-a, 0.0)


@dataclass(frozen=True)
class ResolvedNode:
    """One bounded group node over a fixed universe: its member positions."""

    name: str
    level: str
    members: np.ndarray  # int indices into the universe
    limits: NodeLimits


@dataclass(frozen=True)
class ResolvedLimits:
    """The tree laid over one universe (``ids``): group nodes and per-name bounds."""

    ids: tuple[str, ...]
    nodes: tuple[ResolvedNode, ...]
    name_lo: np.ndarray  # per-name lower bound on w (−inf: none)
    name_hi: np.ndarray  # per-name upper bound on w (+inf: none)

    def rows(self, kind: str) -> tuple[list[ResolvedNode], np.ndarray, np.ndarray]:
        """Nodes bounding ``kind`` and their lower and upper bounds."""
        nodes = [n for n in self.nodes if n.limits.bounded(kind) and len(n.members)]
        lo = np.array([n.limits.lower(kind) for n in nodes], dtype=float)
        hi = np.array([n.limits.upper(kind) for n in nodes], dtype=float)
        return nodes, lo, hi

    def membership(self, nodes: Sequence[ResolvedNode]) -> Any:
        """Sparse 0/1 matrix (len(nodes) × N): one nonzero per member per node."""
        import scipy.sparse as sp

        empty = np.zeros(0, dtype=int)
        r = np.concatenate([np.full(len(n.members), i) for i, n in enumerate(nodes)] or [empty])
        c = np.concatenate([n.members for n in nodes] or [empty])
        return sp.csr_array(
            (np.ones(len(r)), (r.astype(int), c.astype(int))), shape=(len(nodes), len(self.ids))
        )

    def digest(self) -> str:
        """Identity of the structure (members and bounds) for caching compiled problems."""
        import hashlib

        # Computed once per object (the optimizer's cache asks it every solve).
        cached = self.__dict__.get("_digest")
        if cached is not None:
            return str(cached)

        h = hashlib.sha256()
        for n in self.nodes:
            h.update(n.name.encode())
            h.update(np.ascontiguousarray(n.members, dtype=np.int64).tobytes())
            h.update(n.limits.model_dump_json().encode())
        h.update(np.ascontiguousarray(self.name_lo).tobytes())
        h.update(np.ascontiguousarray(self.name_hi).tobytes())
        digest = h.hexdigest()
        object.__setattr__(self, "_digest", digest)
        return digest

    def report(self, w: np.ndarray, names: bool = True) -> pd.DataFrame:
        """Every bounded node (and, with ``names``, every bounded security):
        ``node, level, kind, value, lo, hi, excess`` (excess > 0: beyond the bound, in
        fractions of NAV)."""
        w = np.asarray(w, dtype=float)
        rows: list[dict[str, object]] = []
        for kind in KINDS:
            nodes, lo, hi = self.rows(kind)
            part = exposure(kind, w)
            for n, a, b in zip(nodes, lo, hi, strict=True):
                v = float(part[n.members].sum())
                rows.append(_row(n.name, n.level, kind, v, a, b))
        bounded = np.isfinite(self.name_lo) | np.isfinite(self.name_hi)
        for i in np.flatnonzero(bounded) if names else ():
            rows.append(
                _row(
                    f"{ROOT}/{self.ids[i]}",
                    "security",
                    "weight",
                    float(w[i]),
                    float(self.name_lo[i]),
                    float(self.name_hi[i]),
                )
            )
        return pd.DataFrame(rows, columns=["node", "level", "kind", "value", "lo", "hi", "excess"])

    def breaches(self, w: np.ndarray, tol: float = LIMIT_TOL, names: bool = True) -> pd.DataFrame:
        """Rows of :meth:`report` beyond their bound by more than ``tol``."""
        r = self.report(w, names)
        return r[r["excess"] > tol].reset_index(drop=True)


def _row(node: str, level: str, kind: str, v: float, lo: float, hi: float) -> dict[str, object]:
    return {
        "node": node,
        "level": level,
        "kind": kind,
        "value": v,
        "lo": lo,
        "hi": hi,
        "excess": max(v - hi, lo - v, 0.0),
    }


def resolve(tree: LimitTree, ids: Sequence[str], attributes: pd.DataFrame) -> ResolvedLimits:
    """Lay ``tree`` over the universe ``ids``; ``attributes`` is indexed by security id with
    any of the columns :data:`LEVELS` (module docstring for missing ones)."""
    ids = tuple(map(str, ids))
    index = pd.Index(ids, dtype=object)
    attrs = attributes if attributes.index.equals(index) else attributes.reindex(index)
    # The same naming as LimitTree.path_of, column-wise with integer codes (this runs on
    # every solve: no per-security Python).
    labels: list[tuple[np.ndarray, np.ndarray]] = []
    for level in tree.levels:
        if level in attrs.columns:
            col = attrs[level].to_numpy(dtype=object)
            col = np.where(pd.isna(col), UNASSIGNED, col).astype(str)
            codes, uniques = pd.factorize(col)
            labels.append((np.asarray(codes, dtype=np.int64), np.asarray(uniques, dtype=object)))
        else:
            labels.append(
                (np.zeros(len(ids), dtype=np.int64), np.array([DEFAULT_NODE], dtype=object))
            )
    nodes: list[ResolvedNode] = []
    combined = np.zeros(len(ids), dtype=np.int64)
    for depth in range(len(tree.levels) + 1):
        groups: dict[tuple[str, ...], np.ndarray] = {}
        if depth == 0:
            groups[()] = np.arange(len(ids))
        else:
            codes, uniques = labels[depth - 1]
            combined = combined * len(uniques) + codes
            _, inverse = np.unique(combined, return_inverse=True)
            order = np.argsort(inverse, kind="stable")
            for members in np.split(order, np.cumsum(np.bincount(inverse))[:-1]):
                first = int(members[0])
                key = tuple(str(labels[j][1][labels[j][0][first]]) for j in range(depth))
                groups[key] = members
        # Declared nodes with no member today still resolve (empty), so a typo is visible.
        for declared in tree.nodes:
            parts = tuple(declared.split("/"))
            if len(parts) == depth:
                groups.setdefault(parts, np.zeros(0, dtype=int))
        for key in sorted(groups):
            lim = tree.node_limits(key)
            if lim.empty:
                continue
            at: str = ROOT if depth == 0 else tree.levels[depth - 1]
            nodes.append(ResolvedNode(node_name(key), at, groups[key].astype(int), lim))
    lo = np.full(len(ids), -np.inf)
    hi = np.full(len(ids), np.inf)
    if "security" in tree.each or tree.securities:
        for i, s in enumerate(ids):
            lim = tree.security_limits(s)
            for kind, sign in (("gross", 0), ("long", 1), ("short", -1)):
                v = getattr(lim, kind)
                if v is None:
                    continue
                if sign >= 0:
                    hi[i] = min(hi[i], v)
                if sign <= 0:
                    lo[i] = max(lo[i], -v)
            if lim.net is not None:
                lo[i], hi[i] = max(lo[i], lim.net.lo), min(hi[i], lim.net.hi)
    return ResolvedLimits(ids=ids, nodes=tuple(nodes), name_lo=lo, name_hi=hi)


__all__ = [
    "DEFAULT_NODE",
    "KINDS",
    "LEVELS",
    "LIMIT_TOL",
    "ROOT",
    "UNASSIGNED",
    "Band",
    "LimitTree",
    "NodeLimits",
    "ResolvedLimits",
    "ResolvedNode",
    "exposure",
    "node_name",
    "resolve",
    "rule_name",
]
