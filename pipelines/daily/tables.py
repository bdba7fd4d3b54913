"""The daily loop's own lake table: one row per portfolio and session (the book at close).

``daily_book`` is what the PM report's P&L chart, ``alphafactory status`` and the backtest's
metrics read: NAV, cash, exposures, the day's P&L and its attribution, turnover and the
decision's outcome. ``valid_date`` is the session; ``known_at`` the run's cutoff.
"""

from __future__ import annotations

import pyarrow as pa

from pipelines.lake import TableSpec, register


def _f(name: str, type_: pa.DataType, nullable: bool = True, doc: str = "") -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"doc": doc} if doc else None)


DAILY_BOOK = register(
    TableSpec(
        name="daily_book",
        description="End-of-session book per portfolio: NAV, exposures, P&L attribution, decision outcome.",
        key=("portfolio_id",),
        fields=(
            _f("portfolio_id", pa.string(), False),
            _f("nav", pa.float64(), False, "cash + positions at the close (currency)"),
            _f("cash", pa.float64()),
            _f("gross", pa.float64(), doc="Σ|position value| / NAV"),
            _f("net", pa.float64(), doc="Σ position value / NAV"),
            _f("n_positions", pa.int64()),
            _f("pnl", pa.float64(), doc="NAV change since the previous session"),
            _f("pnl_factor", pa.float64(), doc="held positions × factor returns"),
            _f("pnl_specific", pa.float64(), doc="held positions' return not explained by factors"),
            _f(
                "pnl_trading", pa.float64(), doc="the day's fills marked to the close (incl. costs)"
            ),
            _f("cost", pa.float64(), doc="execution shortfall vs decision price + commission"),
            _f("traded_notional", pa.float64()),
            _f(
                "ic",
                pa.float64(),
                doc="rank IC of the previous decision's scores vs today's returns",
            ),
            _f("optimizer_status", pa.string()),
            _f("approval", pa.string(), doc="approved | rejected | auto"),
            _f("orders", pa.int64()),
            _f("orders_rejected", pa.int64()),
            _f("score_source", pa.string()),
        ),
        valid_time_meaning="session (end of day)",
    )
)

__all__ = ["DAILY_BOOK"]
