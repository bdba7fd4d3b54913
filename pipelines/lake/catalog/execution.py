"""Execution's lake tables (written by :mod:`pipelines.execution`).

All are bitemporal POINT tables whose ``valid_date`` is the **trade date** (the session the
orders work in) and whose ``known_at`` is when we recorded the fact (event time for
acknowledgements and fills). Every table is append-only: an order's later life is a row
in ``order_events``, never an update of ``orders``. Writes use deterministic batch ids and
skip rows whose key is already stored, so re-running any step adds nothing.
"""

from __future__ import annotations

import pyarrow as pa

from pipelines.lake.spec import UTC_TS, TableSpec, column

ORDERS = TableSpec(
    name="orders",
    description="Orders generated from targets, with their pre-trade verdict; the source of truth for what may be sent.",
    key=("client_order_id",),
    fields=(
        column(
            "client_order_id",
            pa.string(),
            False,
            "deterministic: portfolio, trade date, security",
        ),
        column("portfolio_id", pa.string(), False),
        column("security_id", pa.string(), False),
        column("side", pa.string(), False, "buy | sell"),
        column("quantity", pa.float64(), False, "unsigned shares, lot-rounded"),
        column("order_type", pa.string(), False, "market | limit"),
        column("limit_price", pa.float64()),
        column("algo", pa.string(), doc="none | vwap | twap | pov"),
        column("algo_params", pa.string(), doc="JSON object of algo parameters"),
        column("decision_price", pa.float64(), doc="price the targets were computed at"),
        column("adv", pa.float64(), doc="average daily volume, shares"),
        column("sector", pa.string()),
        column("target_shares", pa.float64()),
        column("current_shares", pa.float64(), doc="position the order was netted against"),
        column("status", pa.string(), False, "accepted | rejected (pre-trade verdict)"),
        column("reject_rules", pa.string(), doc="JSON list of failed pre-trade rules"),
        column("reject_reason", pa.string()),
        column("broker", pa.string()),
    ),
    valid_time_meaning="trade date",
)

ORDER_EVENTS = TableSpec(
    name="order_events",
    description="Every state change of an order: submitted, ack, broker reject, fills, cancel, expiry, blocked.",
    key=("event_id",),
    fields=(
        column("event_id", pa.string(), False, "deterministic: order id, event type, fill state"),
        column("client_order_id", pa.string(), False),
        column("portfolio_id", pa.string(), False),
        column("security_id", pa.string(), False),
        column(
            "event_type",
            pa.string(),
            False,
            "ack | reject | partial_fill | fill | cancel | expire | blocked | recovered",
        ),
        column("status", pa.string(), doc="broker order status after the event"),
        column("broker_order_id", pa.string()),
        column("quantity", pa.float64()),
        column("filled_quantity", pa.float64()),
        column("leaves_quantity", pa.float64()),
        column("avg_price", pa.float64()),
        column("reason", pa.string()),
        column("broker", pa.string()),
    ),
    valid_time_meaning="trade date",
)

FILLS = TableSpec(
    name="fills",
    description="Executions reported by the broker for our orders.",
    # Execution ids are unique per broker account, not across our portfolios: two
    # portfolios' accounts may both number their fills from 0.
    key=("portfolio_id", "fill_id"),
    fields=(
        column("fill_id", pa.string(), False, "broker execution id"),
        column("client_order_id", pa.string(), False),
        column("broker_order_id", pa.string()),
        column("portfolio_id", pa.string(), False),
        column("security_id", pa.string(), False),
        column("side", pa.string(), False),
        column("quantity", pa.float64(), False),
        column("price", pa.float64(), False),
        column("commission", pa.float64()),
        column("executed_at", UTC_TS, False),
        column("broker", pa.string()),
    ),
    valid_time_meaning="trade date",
)

POSITIONS = TableSpec(
    name="positions",
    description="End-of-day positions per portfolio, from our own fills (zero rows mark closed positions).",
    key=("portfolio_id", "security_id"),
    fields=(
        column("portfolio_id", pa.string(), False),
        column("security_id", pa.string(), False),
        column("quantity", pa.float64(), False, "signed shares"),
        column("price", pa.float64(), doc="closing mark"),
        column("market_value", pa.float64()),
        column("source", pa.string(), doc="fills | seed"),
    ),
    valid_time_meaning="business date the positions are as of (end of day)",
)

CASH = TableSpec(
    name="cash",
    description="End-of-day cash per portfolio and currency, from our own fills.",
    key=("portfolio_id", "currency"),
    fields=(
        column("portfolio_id", pa.string(), False),
        column("currency", pa.string(), False),
        column("balance", pa.float64(), False),
        column("trade_flow", pa.float64(), doc="−Σ signed quantity × price of the day's fills"),
        column("commission", pa.float64()),
        column("source", pa.string()),
    ),
    valid_time_meaning="business date (end of day)",
)

RECONCILIATION = TableSpec(
    name="reconciliation",
    description="End-of-day comparison of our positions (and cash, item $CASH) with the broker's.",
    key=("portfolio_id", "security_id"),
    fields=(
        column("portfolio_id", pa.string(), False),
        column("security_id", pa.string(), False, "security, or $CASH"),
        column("ours", pa.float64(), False),
        column("theirs", pa.float64()),
        column("difference", pa.float64(), False, "theirs − ours"),
        column("status", pa.string(), False, "match | break | unverified"),
        column("note", pa.string()),
        column("broker", pa.string()),
    ),
    valid_time_meaning="business date reconciled",
)

TCA = TableSpec(
    name="tca",
    description="Transaction cost analysis per order: implementation shortfall vs decision, arrival (open) and VWAP.",
    key=("client_order_id",),
    fields=(
        column("client_order_id", pa.string(), False),
        column("portfolio_id", pa.string(), False),
        column("security_id", pa.string(), False),
        column("side", pa.string(), False),
        column("ordered_quantity", pa.float64(), False),
        column("filled_quantity", pa.float64(), False),
        column("fill_rate", pa.float64()),
        column("avg_fill_price", pa.float64()),
        column("decision_price", pa.float64()),
        column("arrival_price", pa.float64(), doc="session open"),
        column("vwap", pa.float64()),
        column("vwap_method", pa.string(), doc="vendor | typical_price (H+L+C)/3"),
        column("close", pa.float64()),
        column("shortfall_decision_bps", pa.float64(), doc="side·(avg fill / decision − 1), bps"),
        column("shortfall_arrival_bps", pa.float64()),
        column("shortfall_vwap_bps", pa.float64()),
        column("execution_cost", pa.float64(), doc="currency: side·filled·(avg − decision)"),
        column(
            "delay_cost",
            pa.float64(),
            doc="currency: side·filled·(arrival − decision), the market's move",
        ),
        column("impact_cost", pa.float64(), doc="currency: side·filled·(avg − arrival), trading"),
        column("opportunity_cost", pa.float64(), doc="currency: side·unfilled·(close − decision)"),
        column("commission", pa.float64()),
        column("total_shortfall", pa.float64(), doc="execution + opportunity + commission"),
    ),
    valid_time_meaning="trade date",
)

EXECUTION_AUDIT = TableSpec(
    name="execution_audit",
    description="Append-only audit trail of execution: targets, checks, orders, acks, fills, reconciliation.",
    key=("event_id",),
    fields=(
        column("event_id", pa.string(), False, "deterministic per fact, so retries add nothing"),
        column("portfolio_id", pa.string(), False),
        column(
            "stage",
            pa.string(),
            False,
            "targets | pretrade | orders | send | fills | reconcile | tca",
        ),
        column("event", pa.string(), False),
        column("client_order_id", pa.string()),
        column("security_id", pa.string()),
        column("detail", pa.string(), doc="JSON"),
    ),
    valid_time_meaning="trade date",
)

EXECUTION_TABLES = (
    ORDERS,
    ORDER_EVENTS,
    FILLS,
    POSITIONS,
    CASH,
    RECONCILIATION,
    TCA,
    EXECUTION_AUDIT,
)

__all__ = [
    "CASH",
    "EXECUTION_AUDIT",
    "EXECUTION_TABLES",
    "FILLS",
    "ORDERS",
    "ORDER_EVENTS",
    "POSITIONS",
    "RECONCILIATION",
    "TCA",
]
