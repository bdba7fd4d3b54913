"""Execution: orders to a broker, fills, positions, cash, reconciliation, TCA, audit.

Pure library; the Airflow tasks call two entry points:

* :func:`execute_day` — targets → netted, lot-rounded orders → pre-trade checks → the
  ``orders`` table → the broker (idempotent on deterministic client order ids);
* :func:`reconcile_day` — broker order states and fills → ``order_events``/``fills`` →
  end-of-day ``positions``/``cash`` → ``reconciliation`` against the broker (and TCA).

Brokers (:class:`Broker` protocol): :class:`PaperBroker` (default, embedded) and
:class:`~pipelines.execution.fix_broker.FixBroker` (FIX 4.4 via the optional ``quickfix``
package; import ``pipelines.execution.fix_broker`` explicitly). Tables are declared in
:mod:`pipelines.execution.tables` on import of this package.
"""

from pipelines.execution import tables
from pipelines.execution.broker import (
    Algo,
    AlgoInstruction,
    Broker,
    BrokerConnectionError,
    BrokerError,
    BrokerOrder,
    BrokerUnavailableError,
    Fill,
    OrderState,
    OrderStatus,
)
from pipelines.execution.execute import ExecutionReport, SyncResult, execute_day, sync_orders
from pipelines.execution.orders import (
    ProposedOrder,
    client_order_id,
    generate_orders,
    load_orders,
)
from pipelines.execution.paper import PaperBroker
from pipelines.execution.prices import (
    CostModel,
    LakePriceSource,
    PriceSource,
    SessionBar,
    StaticPriceSource,
)
from pipelines.execution.reconcile import ReconciliationReport, reconcile_day, seed_positions
from pipelines.execution.tca import compute_tca, run_tca

__all__ = [
    "Algo",
    "AlgoInstruction",
    "Broker",
    "BrokerConnectionError",
    "BrokerError",
    "BrokerOrder",
    "BrokerUnavailableError",
    "CostModel",
    "ExecutionReport",
    "Fill",
    "LakePriceSource",
    "OrderState",
    "OrderStatus",
    "PaperBroker",
    "PriceSource",
    "ProposedOrder",
    "ReconciliationReport",
    "SessionBar",
    "StaticPriceSource",
    "SyncResult",
    "client_order_id",
    "compute_tca",
    "execute_day",
    "generate_orders",
    "load_orders",
    "reconcile_day",
    "run_tca",
    "seed_positions",
    "sync_orders",
    "tables",
]
