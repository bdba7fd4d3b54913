"""The sensor that waits for a vendor's daily drop, and fails naming feed and day.

Imported by DAG files only (it imports Airflow's SFTP provider at module level).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.sftp.sensors.sftp import SFTPSensor
from airflow.sdk.exceptions import AirflowSensorTimeout


class VendorDropSensor(SFTPSensor):
    """An :class:`SFTPSensor` on a feed's manifest for one session.

    When the deadline (``timeout``) passes, the task fails at once (no retry: waiting
    longer is a decision for a person) with a message naming the feed, the session and
    the path, e.g. ``feed vendor_prices: nothing published for 2024-07-05 at
    /daily/2024-07-05/manifest.json within the 14400 s deadline``.
    """

    template_fields = (*SFTPSensor.template_fields, "session")

    def __init__(self, *, feed: str, session: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.feed = feed
        self.session = session

    def execute(self, context: Any) -> Any:
        try:
            return super().execute(context)
        except AirflowSensorTimeout as exc:
            raise AirflowSensorTimeout(
                f"feed {self.feed}: nothing published for {self.session} at {self.path} "
                f"within the {self.timeout:g} s deadline"
            ) from exc
