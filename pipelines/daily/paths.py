"""Where the daily loop keeps files next to the lake: stage artifacts, the paper broker's
account, and PM reports. All under the lake's parent folder (``./var`` by default)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from pipelines.config import Settings, get_settings


@dataclass(frozen=True)
class DailyPaths:
    """``root``/daily (artifacts), ``root``/broker (paper accounts), ``root``/reports."""

    root: Path

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> DailyPaths:
        s = settings or get_settings()
        root = Path("./var") if s.is_s3 else s.local_root().parent
        return cls(root.expanduser().resolve())

    def artifacts(self, portfolio_id: str, day: dt.date) -> Path:
        return self.root / "daily" / portfolio_id / day.isoformat()

    def broker_state(self, portfolio_id: str) -> Path:
        return self.root / "broker" / f"paper-{portfolio_id}.json"

    def report(self, portfolio_id: str, day: dt.date) -> Path:
        return self.root / "reports" / f"pm-report-{portfolio_id}-{day.isoformat()}.html"
