"""Execution's lake tables, declared once (imported by :mod:`pipelines.execution`).

All are bitemporal POINT tables whose ``valid_date`` is the **trade date** (the session the
orders work in) and whose ``known_at`` is when we recorded the fact (event time for
acknowledgements and fills). Every table is append-only: an order's later life is a row
in ``order_events``, never an update of ``orders``. Writes use deterministic batch ids and
skip rows whose key is already stored, so re-running any step adds nothing.
"""

from __future__ import annotations

import pyarrow as pa

from pipelines.lake import TableSpec, register

UTC_TS = pa.timestamp("us", tz="UTC")


def _f(name: str, type_: pa.DataType, nullable: bool = True, doc: str = "") -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"doc": doc} if doc else None)


ORDERS = register(
    TableSpec(
        name="orders",
        description="Orders generated from targets, with their pre-trade verdict; the source of truth for what may be sent.",
        key=("client_order_id",),
        fields=(
            _f(
                "client_order_id",
                pa.string(),
                False,
                "deterministic: portfolio, trade date, security",
            ),
            _f("portfolio_id", pa.string(), False),
            _f("security_id", pa.string(), False),
            _f("side", pa.string(), False, "buy | sell"),
            _f("quantity", pa.float64(), False, "unsigned shares, lot-rounded"),
            _f("order_type", pa.string(), False, "market | limit"),
            _f("limit_price", pa.float64()),
            _f("algo", pa.string(), doc="none | vwap | twap | pov"),
            _f("algo_params", pa.string(), doc="JSON object of algo parameters"),
            _f("decision_price", pa.float64(), doc="price the targets were computed at"),
            _f("adv", pa.float64(), doc="average daily volume, shares"),
            _f("sector", pa.string()),
            _f("target_shares", pa.float64()),
            _f("current_shares", pa.float64(), doc="position the order was netted against"),
            _f("status", pa.string(), False, "accepted | rejected (pre-trade verdict)"),
            _f("reject_rules", pa.string(), doc="JSON list of failed pre-trade rules"),
            _f("reject_reason", pa.string()),
            _f("broker", pa.string()),
        ),
        valid_time_meaning="trade date",
    )
)

ORDER_EVENTS = register(
    TableSpec(
        name="order_events",
        description="Every state change of an order: submitted, ack, broker reject, fills, cancel, expiry, blocked.",
        key=("event_id",),
        fields=(
            _f("event_id", pa.string(), False, "deterministic: order id, event type, fill state"),
            _f("client_order_id", pa.string(), False),
            _f("portfolio_id", pa.string(), False),
            _f("security_id", pa.string(), False),
            _f(
                "event_type",
                pa.string(),
                False,
                "ack | reject | partial_fill | fill | cancel | expire | blocked | recovered",
            ),
            _f("status", pa.string(), doc="broker order status after the event"),
            _f("broker_order_id", pa.string()),
            _f("quantity", pa.float64()),
            _f("filled_quantity", pa.float64()),
            _f("leaves_quantity", pa.float64()),
            _f("avg_price", pa.float64()),
            _f("reason", pa.string()),
            _f("broker", pa.string()),
        ),
        valid_time_meaning="trade date",
    )
)

FILLS = register(
    TableSpec(
        name="fills",
        description="Executions reported by the broker for our orders.",
        # Execution ids are unique per broker account, not across our portfolios: two
        # portfolios' accounts may both number their fills from 0.
        key=("portfolio_id", "fill_id"),
        fields=(
            _f("fill_id", pa.string(), False, "broker execution id"),
            _f("client_order_id", pa.string(), False),
            _f("broker_order_id", pa.string()),
            _f("portfolio_id", pa.string(), False),
            _f("security_id", pa.string(), False),
            _f("side", pa.string(), False),
            _f("quantity", pa.float64(), False),
            _f("price", pa.float64(), False),
            _f("commission", pa.float64()),
            _f("executed_at", UTC_TS, False),
            _f("broker", pa.string()),
        ),
        valid_time_meaning="trade date",
    )
)

POSITIONS = register(
    TableSpec(
        name="positions",
        description="End-of-day positions per portfolio, from our own fills (zero rows mark closed positions).",
        key=("portfolio_id", "security_id"),
        fields=(
            _f("portfolio_id", pa.string(), False),
            _f("security_id", pa.string(), False),
            _f("quantity", pa.float64(), False, "signed shares"),
            _f("price", pa.float64(), doc="closing mark"),
            _f("market_value", pa.float64()),
            _f("source", pa.string(), doc="fills | seed"),
        ),
        valid_time_meaning="business date the positions are as of (end of day)",
    )
)

CASH = register(
    TableSpec(
        name="cash",
        description="End-of-day cash per portfolio and currency, from our own fills.",
        key=("portfolio_id", "currency"),
        fields=(
            _f("portfolio_id", pa.string(), False),
            _f("currency", pa.string(), False),
            _f("balance", pa.float64(), False),
            _f("trade_flow", pa.float64(), doc="−Σ signed quantity × price of the day's fills"),
            _f("commission", pa.float64()),
            _f("source", pa.string()),
        ),
        valid_time_meaning="business date (end of day)",
    )
)

RECONCILIATION = register(
    TableSpec(
        name="reconciliation",
        description="End-of-day comparison of our positions (and cash, item $CASH) with the broker's.",
        key=("portfolio_id", "security_id"),
        fields=(
            _f("portfolio_id", pa.string(), False),
            _f("security_id", pa.string(), False, "security, or $CASH"),
            _f("ours", pa.float64(), False),
            _f("theirs", pa.float64()),
            _f("difference", pa.float64(), False, "theirs − ours"),
            _f("status", pa.string(), False, "match | break | unverified"),
            _f("note", pa.string()),
            _f("broker", pa.string()),
        ),
        valid_time_meaning="business date reconciled",
    )
)

TCA = register(
    TableSpec(
        name="tca",
        description="Transaction cost analysis per order: implementation shortfall vs decision, arrival (open) and VWAP.",
        key=("client_order_id",),
        fields=(
            _f("client_order_id", pa.string(), False),
            _f("portfolio_id", pa.string(), False),
            _f("security_id", pa.string(), False),
            _f("side", pa.string(), False),
            _f("ordered_quantity", pa.float64(), False),
            _f("filled_quantity", pa.float64(), False),
            _f("fill_rate", pa.float64()),
            _f("avg_fill_price", pa.float64()),
            _f("decision_price", pa.float64()),
            _f("arrival_price", pa.float64(), doc="session open"),
            _f("vwap", pa.float64()),
            _f("vwap_method", pa.string(), doc="vendor | typical_price (H+L+C)/3"),
            _f("close", pa.float64()),
            _f("shortfall_decision_bps", pa.float64(), doc="side·(avg fill / decision − 1), bps"),
            _f("shortfall_arrival_bps", pa.float64()),
            _f("shortfall_vwap_bps", pa.float64()),
            _f("execution_cost", pa.float64(), doc="currency: side·filled·(avg − decision)"),
            _f("opportunity_cost", pa.float64(), doc="currency: side·unfilled·(close − decision)"),
            _f("commission", pa.float64()),
            _f("total_shortfall", pa.float64(), doc="execution + opportunity + commission"),
        ),
        valid_time_meaning="trade date",
    )
)

EXECUTION_AUDIT = register(
    TableSpec(
        name="execution_audit",
        description="Append-only audit trail of execution: targets, checks, orders, acks, fills, reconciliation.",
        key=("event_id",),
        fields=(
            _f("event_id", pa.string(), False, "deterministic per fact, so retries add nothing"),
            _f("portfolio_id", pa.string(), False),
            _f(
                "stage",
                pa.string(),
                False,
                "targets | pretrade | orders | send | fills | reconcile | tca",
            ),
            _f("event", pa.string(), False),
            _f("client_order_id", pa.string()),
            _f("security_id", pa.string()),
            _f("detail", pa.string(), doc="JSON"),
        ),
        valid_time_meaning="trade date",
    )
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
