"""The book a past session decided from, as the lake recorded it: a read-only broker.

The daily loop's ``optimize`` asks the broker for its positions and cash; the broker's
*current* state is not the session's. :class:`RecordedBook` answers with the broker's
positions and cash as our reconciliation recorded them for the session (the
``reconciliation`` rows' ``theirs``, known by its cutoff): the broker's end-of-session
book, after the session's fills, corporate actions and delisting cash-outs, which is
what the decision saw (the orders it sends fill only on the next session). When the
session has no reconciliation (it has not run yet) or the broker does not report cash,
our own ``positions`` and ``cash`` books answer instead; :attr:`source` says which.

``submit`` acknowledges without sending anything anywhere (the replay's ``execute``
derives and checks the orders exactly as the loop did; nothing leaves).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow.compute as pc

from pipelines.execution.broker import BrokerOrder, Fill, OrderState, OrderStatus
from pipelines.execution.reconcile import CASH_ITEM
from pipelines.lake import Lake
from pipelines.timeline import decision_cutoff

_LOOKBACK = dt.timedelta(days=3660)


class RecordedBook:
    """A :class:`~pipelines.execution.broker.Broker` answering from the lake's books (module doc)."""

    def __init__(self, lake: Lake, portfolio_id: str, day: dt.date, name: str = "paper") -> None:
        self.name = name
        self.portfolio_id = portfolio_id
        self.day = day
        self.submitted: list[BrokerOrder] = []
        known = decision_cutoff(day)
        flt = pc.field("portfolio_id") == portfolio_id
        rec = lake.as_of("reconciliation", known_at=known, valid_at=day, filter=flt).to_pandas()
        held = rec[rec["security_id"] != CASH_ITEM]
        cash_row = rec[rec["security_id"] == CASH_ITEM]
        ours = lake.as_of(
            "positions", known_at=known, valid_at=(day - _LOOKBACK, day), filter=flt
        ).to_pandas()
        latest = ours.sort_values("valid_date").groupby("security_id").tail(1)
        #: Our own book: the latest recorded quantity per security on or before the day.
        self.ours = {
            str(s): float(q)
            for s, q in zip(latest["security_id"], latest["quantity"], strict=True)
            if q
        }
        cash_book = lake.as_of(
            "cash", known_at=known, valid_at=(day - _LOOKBACK, day), filter=flt
        ).to_pandas()
        self.our_cash = (
            float(cash_book.sort_values("valid_date")["balance"].iloc[-1])
            if len(cash_book)
            else None
        )
        if len(rec):
            self._positions = {
                str(s): float(q)
                for s, q in zip(held["security_id"], held["theirs"], strict=True)
                if pd.notna(q) and q
            }
            self.source = "reconciliation"
        else:
            self._positions = dict(self.ours)
            self.source = "positions"
        theirs = cash_row["theirs"].dropna()
        self._cash = float(theirs.iloc[0]) if len(theirs) else self.our_cash

    def check(self) -> str:
        """Whether our own positions book agrees with the broker's as recorded (a line)."""
        if self.source != "reconciliation":
            return "our positions book (no reconciliation recorded for the session)"
        off = sorted(
            s
            for s in set(self.ours) | set(self._positions)
            if self.ours.get(s, 0.0) != self._positions.get(s, 0.0)
        )
        if off:
            return f"our positions differ from the broker's on {len(off)} name(s): {off[:5]}"
        return f"our positions agree with the broker's ({len(self._positions)} names)"

    # ---- what the decision reads ----------------------------------------------------------

    def positions(self, account: str) -> dict[str, float]:
        return dict(self._positions) if account == self.portfolio_id else {}

    def cash(self, account: str) -> float | None:
        return self._cash if account == self.portfolio_id else None

    # ---- the rest of the Broker protocol: nothing is ever sent ---------------------------

    def connect(self) -> None:
        return None

    def close(self) -> None:
        return None

    def submit(self, order: BrokerOrder) -> OrderState:
        self.submitted.append(order)
        return OrderState(order.client_order_id, OrderStatus.NEW, order.quantity)

    def cancel(self, client_order_id: str) -> OrderState:
        return OrderState(client_order_id, OrderStatus.CANCELLED, 0.0)

    def open_orders(self, account: str) -> list[OrderState]:
        return []

    def order_status(self, client_order_id: str) -> OrderState | None:
        return None

    def fills(self, account: str, trade_date: dt.date | None = None) -> list[Fill]:
        return []


__all__ = ["RecordedBook"]
