"""Stage outputs handed from one stage (one DAG task) to the next.

A stage's heavy output (the risk model, the target portfolio) is pickled under
``<root>/daily/<portfolio>/<day>/<stage>.pkl``, written atomically, so the next task —
possibly another process or worker — picks it up, and a re-run task overwrites it with
the same content. The lake keeps what others read (orders, fills, positions, the book);
these files are the loop's working state and the PM report's inputs.
"""

from __future__ import annotations

import datetime as dt
import os
import pickle
from pathlib import Path
from typing import Any

from pipelines.daily.paths import DailyPaths


class MissingArtifactError(LookupError):
    """A stage's input has not been produced (its upstream stage did not run)."""


class DayArtifacts:
    """The artifact folder of one portfolio and session."""

    def __init__(self, paths: DailyPaths, portfolio_id: str, day: dt.date) -> None:
        self.folder = paths.artifacts(portfolio_id, day)
        self.portfolio_id = portfolio_id
        self.day = day

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.pkl"

    def put(self, name: str, value: Any) -> Path:
        """Store ``value`` as ``name`` (atomic replace)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.path(name)
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(tmp, target)
        return target

    def get(self, name: str) -> Any:
        """The stored ``name``; :class:`MissingArtifactError` naming the file when absent."""
        target = self.path(name)
        if not target.is_file():
            raise MissingArtifactError(
                f"{self.portfolio_id} {self.day}: no '{name}' artifact at {target} "
                "(did its stage run?)"
            )
        return pickle.loads(target.read_bytes())

    def has(self, name: str) -> bool:
        return self.path(name).is_file()
