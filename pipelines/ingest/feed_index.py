"""A light view of the feed declarations for DAG files: names, protocol, paths, table.

DAG parsing must not import the lake (deltalake, duckdb), so this reads the YAML files
directly and validates nothing beyond what wiring needs; :mod:`pipelines.ingest.feed_spec`
is the full, validated model the tasks use.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True)
class FeedEntry:
    name: str
    protocol: str
    table: str
    connection_id: str
    remote_dir: str | None
    manifest: str | None

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
    """Every declared feed (shipped and ``ALPHAFACTORY_FEEDS_DIR``), security master first."""
    dirs = [FEEDS_DIR, *(Path(d) for d in extra_feed_dirs())]
    entries = []
    for directory in dirs:
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
                )
            )
    order = {"security_master": 0, "corporate_actions": 1, "prices": 2}
    return sorted(entries, key=lambda e: (e.protocol != "sftp", order.get(e.table, 9), e.name))
