"""Execution: orders to a broker, fills, positions, cash, reconciliation, TCA, audit.

Pure library; the daily loop (Airflow tasks) calls two entry points::

    from pipelines.execution import LakePriceSource, PaperBroker, execute_day, load_targets
    from pipelines.execution import reconcile_day
    from pipelines.execution.accounts import account_store
    from pipelines.risk.pretrade import load_limits

    targets = load_targets(lake, "main", decision_date)   # rows of ``target_portfolios``
    account = account_store(lake.location.root, lake.location.options(), "main")
    broker = PaperBroker(account, LakePriceSource(lake))  # account under the lake root
    report = execute_day(lake, "main", trade_date, targets, broker, load_limits("default"),
                         nav=nav, adv=adv_shares, sectors=sectors)
    ...  # after the session's prices are published
    recon = reconcile_day(lake, broker, "main", trade_date, prices=LakePriceSource(lake))

* :func:`execute_day` ``(lake, portfolio_id, trade_date, targets, broker, limits, *,
  book=None, nav=None, current_positions=None, adv=None, sectors=None, lot_size=1,
  algo=None, ...) -> ExecutionReport`` — targets (a
  :class:`~pipelines.portfolio.targets.TargetPortfolio`, the frame :func:`load_targets`
  returns, or any frame with ``security_id``, ``target_shares``, ``price``) → netted,
  lot-rounded orders → pre-trade checks (:mod:`pipelines.risk.pretrade`, the central
  kill switch in the lake included) → the ``orders`` table → the broker. Idempotent on deterministic client order
  ids: a retried task or a re-run day never sends an order twice.
* :func:`cancel_open_orders` ``(broker, account)`` — cancel every order still working at
  the broker (what engaging the kill switch does; ``alphafactory kill-switch engage``).
* :func:`reconcile_day` ``(lake, broker, portfolio_id, date, *, prices=None, ...) ->
  ReconciliationReport`` — broker order states and fills → ``order_events``/``fills`` →
  end-of-day ``positions``/``cash`` → ``reconciliation`` against the broker (breaks
  reported, never auto-fixed) and, given ``prices``, TCA into ``tca``.

Brokers (:class:`Broker` protocol): :class:`PaperBroker` (default, embedded) and
:class:`~pipelines.execution.fix_broker.FixBroker` (FIX 4.4 via the optional ``quickfix``
package, extra ``fix``; import ``pipelines.execution.fix_broker`` explicitly), tested
against the loopback simulator :class:`~pipelines.execution.fix_acceptor.FixAcceptor`.
Its tables are declared in :mod:`pipelines.lake.catalog.execution`.
"""

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
from pipelines.execution.execute import (
    ExecutionReport,
    SyncResult,
    cancel_open_orders,
    execute_day,
    sync_orders,
)
from pipelines.execution.orders import (
    ProposedOrder,
    client_order_id,
    generate_orders,
    load_orders,
    load_targets,
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
    "cancel_open_orders",
    "client_order_id",
    "compute_tca",
    "execute_day",
    "generate_orders",
    "load_orders",
    "load_targets",
    "reconcile_day",
    "run_tca",
    "seed_positions",
    "sync_orders",
]
