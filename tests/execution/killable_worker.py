"""A worker process for the SIGKILL test: runs execute_day and stalls after N submits.

``python -m tests.execution.killable_worker --lake L --marker M --after N``
(``--paper STATE`` or ``--fix-port P --fix-dir D``). After the N-th submit reached the
broker it creates ``M`` and sleeps, waiting to be killed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from pipelines.execution import BrokerOrder, OrderState, PaperBroker, execute_day
from pipelines.lake import Lake
from tests.execution.conftest import (
    NAV,
    PF,
    TRADE,
    make_adv,
    make_limits,
    make_prices,
    make_targets,
)


class StallAfter:
    def __init__(self, inner: object, n: int, marker: Path) -> None:
        self.inner, self.n, self.marker, self.submits = inner, n, marker, 0
        self.name = inner.name  # type: ignore[attr-defined]

    def submit(self, order: BrokerOrder) -> OrderState:
        state = self.inner.submit(order)  # type: ignore[attr-defined]
        self.submits += 1
        if self.submits >= self.n:
            self.marker.write_text(str(self.submits))
            time.sleep(600)  # killed here
        return state  # type: ignore[no-any-return]

    def __getattr__(self, item: str) -> object:
        return getattr(self.inner, item)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lake", required=True)
    p.add_argument("--marker", required=True)
    p.add_argument("--after", type=int, default=3)
    p.add_argument("--paper")
    p.add_argument("--fix-port", type=int)
    p.add_argument("--fix-dir")
    a = p.parse_args()
    if a.paper:
        broker: object = PaperBroker(a.paper, make_prices(), auto_work=False)
    else:
        from pipelines.execution.fix_broker import FixBroker

        broker = FixBroker(a.fix_dir, port=a.fix_port, timeout=5.0)
    execute_day(
        Lake(a.lake),
        PF,
        TRADE,
        make_targets(),
        StallAfter(broker, a.after, Path(a.marker)),  # type: ignore[arg-type]
        make_limits(),
        nav=NAV,
        adv=make_adv(),
    )


if __name__ == "__main__":
    main()
