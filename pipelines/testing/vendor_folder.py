"""A vendor's file drop held in memory: the ``FileSource`` / ``FileSession`` protocols of
:mod:`pipelines.ingest.sources` over a ``{remote path: bytes}`` dict, for tests that hand
the ingestion code exact bytes (another vendor's layout, a broken manifest, a restatement).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class MemoryFolder:
    """Remote files by absolute path; folders are the paths' parents."""

    files: dict[str, bytes]
    #: Modification times for ``known_at: file_mtime`` feeds (others never ask).
    mtimes: dict[str, dt.datetime] = field(default_factory=dict)

    def list_dir(self, path: str) -> list[str] | None:
        names = [p.rsplit("/", 1)[1] for p in self.files if p.rsplit("/", 1)[0] == path]
        return sorted(names) or None

    def read(self, path: str) -> bytes:
        return self.files[path]

    def mtime(self, path: str) -> dt.datetime:
        return self.mtimes[path]

    @contextlib.contextmanager
    def session(self) -> Iterator[MemoryFolder]:
        """The folder is its own session (the ``FileSource`` protocol)."""
        yield self


__all__ = ["MemoryFolder"]
