"""The sensor that waits for a vendor's daily drop, and fails naming feed and day.

Imported by DAG files only (it imports Airflow's SFTP provider at module level).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.providers.sftp.sensors.sftp import SFTPSensor
from airflow.sdk.exceptions import AirflowSensorTimeout

from pipelines.ingest.feed_index import manifest_path


class VendorDropSensor(SFTPSensor):
    """An :class:`SFTPSensor` on a feed's manifest for one session.

    When the deadline (``timeout``) passes, the task fails at once (no retry: waiting
    longer is a decision for a person) with a message naming the feed, the session and
    the path, e.g. ``feed vendor_prices: nothing published for 2024-07-05 at
    /daily/2024-07-05/manifest.json within the 14400 s deadline``.

    The path is the feed's ``remote_dir``/``manifest`` templates rendered for the session
    (any ``{date:<strftime>}``) by the same function the ingestion uses, when the task
    runs (the session is a Jinja-rendered field, the templates are not Jinja).
    """

    template_fields = (*SFTPSensor.template_fields, "session")

    def __init__(
        self, *, feed: str, session: str, remote_dir: str, manifest: str, **kwargs: Any
    ) -> None:
        super().__init__(path=f"{remote_dir.rstrip('/')}/{manifest}", **kwargs)
        self.feed = feed
        self.session = session
        self.remote_dir = remote_dir
        self.manifest = manifest

    def resolve_path(self) -> str:
        """The manifest path of :attr:`session` (also set as :attr:`path`)."""
        self.path = manifest_path(
            self.remote_dir, self.manifest, dt.date.fromisoformat(self.session)
        )
        return self.path

    def execute(self, context: Any) -> Any:
        self.resolve_path()
        try:
            return super().execute(context)
        except AirflowSensorTimeout as exc:
            raise AirflowSensorTimeout(
                f"feed {self.feed}: nothing published for {self.session} at {self.path} "
                f"within the {self.timeout:g} s deadline"
            ) from exc
