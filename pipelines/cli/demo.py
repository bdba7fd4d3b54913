"""``alphafactory demo``: the main job on the embedded default, end to end."""

from __future__ import annotations

from rich.console import Console

from pipelines.lake import Lake

console = Console()


def demo() -> None:
    """Run every stage that exists on the embedded default (local lake, loopback vendor)."""
    lake = Lake.from_settings()
    created = lake.init()
    console.print(f"lake at {lake.location.root}: {len(created)} tables created")
