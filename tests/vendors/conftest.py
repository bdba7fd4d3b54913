"""Fixtures for the vendor simulator: a small market, a fault plan, and running servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from pipelines.vendors.clock import FrozenClock
from pipelines.vendors.config import MarketConfig, VendorConfig
from pipelines.vendors.faults import FaultPlan
from pipelines.vendors.server import VendorEndpoints, run_vendor
from pipelines.vendors.simulator import VendorSimulator

#: Small enough to generate in well under a second, big enough for a measurable IC.
SMALL_MARKET = MarketConfig(
    seed=11, universe_size=200, start=date(2023, 1, 3), end=date(2024, 3, 28), signal_strength=0.1
)

FAULT_DAYS = {
    "late": date(2023, 3, 6),
    "missing": date(2023, 3, 7),
    "truncated_gzip": date(2023, 3, 8),
    "checksum_mismatch": date(2023, 3, 9),
    "schema_rename": date(2023, 3, 10),
    "schema_retype": date(2023, 3, 13),
    "duplicate_rows": date(2023, 3, 14),
    "impossible_values": date(2023, 3, 15),
    "correction": date(2023, 3, 16),
}

FAULT_YAML = """
faults:
  2023-03-06:
    - late: {hours: 5}
  2023-03-07: [missing]
  2023-03-08: [truncated_gzip]
  2023-03-09: [checksum_mismatch]
  2023-03-10:
    - {kind: schema_rename, column: PX_LAST, new_name: PX_CLOSE}
  2023-03-13: [schema_retype]
  2023-03-14:
    - duplicate_rows: {rows: 4}
  2023-03-15:
    - impossible_values: {rows: 3}
  2023-03-16:
    - correction: {rows: 2}
"""


@pytest.fixture(scope="session")
def fault_plan(tmp_path_factory: pytest.TempPathFactory) -> FaultPlan:
    path = tmp_path_factory.mktemp("faults") / "faults.yaml"
    path.write_text(FAULT_YAML)
    return FaultPlan.from_yaml(path)


@pytest.fixture(scope="session")
def sim(fault_plan: FaultPlan) -> VendorSimulator:
    """The small market with the fault plan above (in-process, no servers)."""
    return VendorSimulator(SMALL_MARKET, faults=fault_plan)


@dataclass
class RunningVendor:
    endpoints: VendorEndpoints
    clock: FrozenClock
    config: VendorConfig


def vendor_config(state_dir: Path, clock: FrozenClock, **overrides: object) -> VendorConfig:
    """Test config: loopback, free ports, frozen clock, generous rate limit, no 5xx."""
    base: dict[str, object] = {
        "market": SMALL_MARKET,
        "state_dir": state_dir,
        "clock": clock,
        "rate_limit": 10_000,
        "error_rate": 0.0,
    }
    base.update(overrides)
    return VendorConfig(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def vendor(
    tmp_path_factory: pytest.TempPathFactory, sim: VendorSimulator
) -> Iterator[RunningVendor]:
    """SFTP + REST servers over :func:`sim`, with a frozen clock the test can move."""
    clock = FrozenClock(datetime(2023, 6, 1, 12, 0, tzinfo=UTC))
    cfg = vendor_config(tmp_path_factory.mktemp("vendor-state"), clock, faults=sim.faults)
    with run_vendor(cfg, simulator=sim) as endpoints:
        yield RunningVendor(endpoints, clock, cfg)


@pytest.fixture
def make_vendor(
    sim: VendorSimulator, tmp_path: Path
) -> Callable[..., AbstractContextManager[VendorEndpoints]]:
    """Factory for extra servers over the shared simulator, e.g. ``make_vendor(rate_limit=3)``."""

    def factory(**overrides: object) -> AbstractContextManager[VendorEndpoints]:
        clock = overrides.pop("clock", FrozenClock(datetime(2023, 6, 1, tzinfo=UTC)))
        cfg = vendor_config(tmp_path, clock, faults=sim.faults, **overrides)  # type: ignore[arg-type]
        return run_vendor(cfg, simulator=sim)

    return factory
