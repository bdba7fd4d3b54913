"""Vendor simulator: a deterministic synthetic market served over SFTP and REST.

Public entry points:

* :class:`pipelines.vendors.config.MarketConfig` / :class:`VendorConfig` – what to generate
  and how to serve it.
* :class:`pipelines.vendors.simulator.VendorSimulator` – pure-Python, in-process access to the
  daily files, REST records and the underlying arrays (no servers needed).
* :func:`pipelines.vendors.server.run_vendor` – run the SFTP and REST servers in a background
  thread.

File formats are documented in ``pipelines/vendors/FORMATS.md``.
"""

from __future__ import annotations

from pipelines.vendors.config import MarketConfig, VendorConfig
from pipelines.vendors.faults import Fault, FaultPlan, FaultSpec

__all__ = ["Fault", "FaultPlan", "FaultSpec", "MarketConfig", "VendorConfig"]
