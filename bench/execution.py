"""Execution benchmark: order round trips on the paper broker vs FIX over loopback.

For ``N`` orders: submit (wait for the acknowledgement), work the session, read every
order's status, positions and fills. The paper broker is the baseline; the FIX broker
(QuickFIX initiator ↔ the loopback simulator) is reported as a ratio against it. Without
quickfix only the baseline is measured.

    .venv/bin/python bench/execution.py [--orders 200]   →  bench/results/execution.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import timed, write_results
from pipelines.execution import BrokerOrder, PaperBroker, SessionBar, StaticPriceSource
from pipelines.execution.fix_session import quickfix_available

DAY = dt.date(2024, 1, 3)


def _prices(n: int) -> StaticPriceSource:
    src = StaticPriceSource()
    for i in range(n):
        px = 20.0 + i % 80
        src.add(
            DAY,
            f"S{i:05d}",
            SessionBar(px, px * 1.01, px * 0.99, px, 1_000_000, adv=1_000_000, sigma=0.02),
        )
    return src


def _orders(n: int) -> list[BrokerOrder]:
    return [
        BrokerOrder(f"B{i:018d}", "bench", DAY, f"S{i:05d}", "buy" if i % 2 else "sell", 100)
        for i in range(n)
    ]


def _round_trip(broker: Any, work: Any, orders: list[BrokerOrder]) -> dict[str, float]:
    t_submit, _ = timed(lambda: [broker.submit(o) for o in orders])
    t_work, _ = timed(work)
    t_status, _ = timed(lambda: [broker.order_status(o.client_order_id) for o in orders])
    t_account, fills = timed(lambda: (broker.positions("bench"), broker.fills("bench", DAY)))
    assert len(fills[1]) >= len(orders)
    return {
        "submit_s": t_submit,
        "orders_per_s": len(orders) / t_submit,
        "work_session_s": t_work,
        "status_all_s": t_status,
        "positions_and_fills_s": t_account,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=200)
    n = parser.parse_args().orders
    prices, orders = _prices(n), _orders(n)
    out: dict[str, Any] = {"orders": n}
    with tempfile.TemporaryDirectory() as tmp:
        paper = PaperBroker(Path(tmp) / "paper.json", prices, auto_work=False)
        paper.connect()
        out["paper"] = _round_trip(paper, paper.work, orders)
        if quickfix_available():
            from pipelines.execution.fix_acceptor import FixAcceptor
            from pipelines.execution.fix_broker import FixBroker

            sim = FixAcceptor(Path(tmp) / "sim", prices).start()
            broker = FixBroker(Path(tmp) / "client", port=sim.port)
            try:
                broker.connect()

                def work() -> None:
                    sim.work(DAY)
                    broker.sync()

                out["fix"] = _round_trip(broker, work, orders)
            finally:
                broker.close()
                sim.stop()
            out["fix_vs_paper_submit_ratio"] = out["fix"]["submit_s"] / out["paper"]["submit_s"]
        else:
            out["fix"] = "skipped: quickfix not installed"
    path = write_results("execution", out)
    print(path.read_text())


if __name__ == "__main__":
    main()
