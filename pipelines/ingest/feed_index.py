"""A light view of the feed declarations for DAG files: names, protocol, paths, table.

DAG parsing must not import the lake (deltalake, duckdb), so this reads the YAML files
directly and validates nothing beyond what wiring needs; :mod:`pipelines.ingest.feed_spec`
is the full, validated model the tasks use.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import yaml

FEEDS_DIR = Path(__file__).resolve().parent / "feeds"


def extra_feed_dirs() -> list[str]:
    """The directories of ``ALPHAFACTORY_FEEDS_DIR`` (``os.pathsep``-separated), in order.

    Settings are imported here, not at module level: DAG files import this module at parse
    time (``pipelines.config`` costs ~0.1 s once Airflow has loaded pydantic).
    """
    from pipelines.config import get_settings

    extra = get_settings().feeds_dir or ""
    return [d for d in extra.split(os.pathsep) if d]


def feed_dirs() -> list[Path]:
    """Where feed YAML files are read from, in order: the shipped simulator feeds (unless
    ``ALPHAFACTORY_SHIPPED_FEEDS=false``), then :func:`extra_feed_dirs`."""
    from pipelines.config import get_settings

    shipped = [FEEDS_DIR] if get_settings().shipped_feeds else []
    return [*shipped, *(Path(d) for d in extra_feed_dirs())]


class RemoteTemplateError(ValueError):
    """A remote folder or file name template that cannot be rendered."""


def render_remote(template: str, day: dt.date, *, field: str = "date") -> str:
    """A remote folder or file name for business day ``day``: THE template renderer.

    ``{date}`` is the ISO date and ``{date:<strftime>}`` any strftime of it
    (``/outgoing/{date:%Y%m%d}``, ``px_{date:%d%m%Y}.csv``); corrections name the previous
    session ``{previous:...}`` (``field="previous"``). The DAG's sensors, the tasks, the
    backfill and the CLI all render through this one function.
    """
    try:
        return template.format_map({field: day})
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise RemoteTemplateError(
            f"remote name template {template!r}: {exc!r} (use {{{field}}} or "
            f"{{{field}:<strftime>}}, e.g. {{{field}:%Y%m%d}})"
        ) from exc


#: Tables whose rows are validated against another table as known the same session: a feed
#: loading the key table depends on every feed loading one of the listed tables.
TABLE_DEPENDENCIES: dict[str, tuple[str, ...]] = {
    "prices": ("security_master",),
    "corporate_actions": ("security_master",),
}


class FeedOrderError(ValueError):
    """A feed's ``depends_on`` names an unknown feed, or the dependencies form a cycle."""


class _Orderable(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def protocol(self) -> str: ...
    @property
    def table(self) -> str: ...
    @property
    def depends_on(self) -> tuple[str, ...]: ...


F = TypeVar("F", bound=_Orderable)


def feed_dependencies(feeds: Sequence[_Orderable]) -> dict[str, tuple[str, ...]]:
    """For each feed, the feeds that must load before it (same session or chunk).

    Derived from the target table (:data:`TABLE_DEPENDENCIES`: prices and corporate
    actions after the security master), plus the feed's declared ``depends_on``. The one
    dependency rule of the DAG and of the backfill.
    """
    names = {f.name for f in feeds}
    by_table: dict[str, list[str]] = {}
    for f in feeds:
        by_table.setdefault(f.table, []).append(f.name)
    out: dict[str, tuple[str, ...]] = {}
    for f in feeds:
        unknown = sorted(set(f.depends_on) - names)
        if unknown:
            raise FeedOrderError(f"feed {f.name!r}: depends_on names unknown feeds {unknown}")
        deps = set(f.depends_on)
        for table in TABLE_DEPENDENCIES.get(f.table, ()):
            deps.update(by_table.get(table, ()))
        deps.discard(f.name)
        out[f.name] = tuple(sorted(deps))
    return out


def in_dependency_order(feeds: Sequence[F]) -> list[F]:
    """``feeds`` with every feed after those it depends on (:func:`feed_dependencies`).

    Ties: file-drop feeds before REST feeds, then by name.
    """
    deps = feed_dependencies(feeds)
    pending = {f.name: f for f in feeds}
    done: set[str] = set()
    ordered: list[F] = []
    while pending:
        ready = [f for f in pending.values() if set(deps[f.name]) <= done]
        if not ready:
            raise FeedOrderError(f"feed dependencies form a cycle among {sorted(pending)}")
        nxt = min(ready, key=lambda f: (f.protocol != "sftp", f.name))
        ordered.append(nxt)
        done.add(nxt.name)
        del pending[nxt.name]
    return ordered


@dataclass(frozen=True)
class FeedEntry:
    name: str
    protocol: str
    table: str
    connection_id: str
    remote_dir: str | None
    manifest: str | None
    depends_on: tuple[str, ...] = ()

    def manifest_path(self, day: dt.date) -> str | None:
        """Remote path of the day's manifest (what the SFTP sensor waits for)."""
        if self.remote_dir is None or self.manifest is None:
            return None
        return manifest_path(self.remote_dir, self.manifest, day)


def manifest_path(remote_dir: str, manifest: str, day: dt.date) -> str:
    """Remote path of a feed's manifest for ``day`` (both parts are templates)."""
    folder = render_remote(remote_dir, day).rstrip("/")
    return f"{folder}/{render_remote(manifest, day)}"


def feed_index() -> list[FeedEntry]:
    """Every declared feed (:func:`feed_dirs`), in dependency order."""
    entries = []
    for directory in feed_dirs():
        for path in sorted(directory.glob("*.yaml")):
            raw = yaml.safe_load(path.read_text()) or {}
            entries.append(
                FeedEntry(
                    name=raw["name"],
                    protocol=raw["protocol"],
                    table=raw["table"],
                    connection_id=raw.get("connection_id", ""),
                    remote_dir=raw.get("remote_dir"),
                    manifest=raw.get("manifest"),
                    depends_on=tuple(raw.get("depends_on") or ()),
                )
            )
    return in_dependency_order(entries)
