"""The daily loop's own lake tables: the book at close, and the stages' working state.

``daily_book`` is what the PM report's P&L chart, ``alphafactory status`` and the backtest's
metrics read: NAV, cash, exposures, the day's P&L and its attribution, turnover and the
decision's outcome. ``valid_date`` is the session; ``known_at`` the run's cutoff.
"""

from __future__ import annotations

import pyarrow as pa

from pipelines.lake.spec import TableSpec, column

DAILY_BOOK = TableSpec(
    name="daily_book",
    description="End-of-session book per portfolio: NAV, exposures, P&L attribution, decision outcome.",
    key=("portfolio_id",),
    fields=(
        column("portfolio_id", pa.string(), False),
        column("nav", pa.float64(), False, "cash + positions at the close (currency)"),
        column("cash", pa.float64()),
        column("gross", pa.float64(), doc="Σ|position value| / NAV"),
        column("net", pa.float64(), doc="Σ position value / NAV"),
        column("n_positions", pa.int64()),
        column("pnl", pa.float64(), doc="NAV change since the previous session"),
        column("pnl_factor", pa.float64(), doc="held positions × factor returns"),
        column("pnl_specific", pa.float64(), doc="held positions' return not explained by factors"),
        column(
            "pnl_trading", pa.float64(), doc="the day's fills marked to the close (incl. costs)"
        ),
        column(
            "cost",
            pa.float64(),
            doc="cost of trading: impact (fills vs arrival price) + commission",
        ),
        column(
            "cost_delay",
            pa.float64(),
            doc="the market's move from decision to arrival price on the traded quantity",
        ),
        column("traded_notional", pa.float64()),
        column(
            "ic",
            pa.float64(),
            doc="rank IC of the previous decision's scores vs today's returns",
        ),
        column("optimizer_status", pa.string()),
        column("approval", pa.string(), doc="approved | rejected | auto"),
        column("orders", pa.int64()),
        column("orders_rejected", pa.int64()),
        column("score_source", pa.string()),
        column(
            "stale_marks",
            pa.string(),
            doc="held securities marked at an earlier close (no close on the session), comma-separated",
        ),
    ),
    valid_time_meaning="session (end of day)",
)

STAGE_STATE = TableSpec(
    name="stage_state",
    description=(
        "Working state one daily stage hands to the next (scores, risk model, targets, "
        "book, pre-trade preview, approval), pickled; see pipelines.lake.stage_state."
    ),
    key=("portfolio_id", "name"),
    fields=(
        column("portfolio_id", pa.string(), False),
        column("name", pa.string(), False, "the stage output's name, e.g. targets"),
        column("version", pa.int64(), False, "1, 2, … per rewrite with other content"),
        column("content_hash", pa.string(), False, "sha256 of payload (24 hex)"),
        column("payload", pa.binary(), False, "the value, pickled"),
    ),
    valid_time_meaning="session the state belongs to",
)

__all__ = ["DAILY_BOOK", "STAGE_STATE"]
