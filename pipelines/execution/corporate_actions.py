"""Corporate actions in a held book: splits and cash dividends at their ex-date.

A position held at the close of the session before an ex-date ``D`` is the position of
record; on ``D``, before that session's trades:

* **split** (``ratio`` new shares per old share): the quantity is multiplied by ``ratio``;
  cash is unchanged (fractional shares are kept: the simulated vendor pays no cash in
  lieu, and rounding would create P&L the prices do not show);
* **cash dividend** (``amount`` per share): cash changes by ``quantity × amount`` — a long
  is credited, a short is charged (the lender is owed the dividend). Several actions on
  one ex-date (a regular and a special dividend) each apply once.

Both books apply the same actions from the same point-in-time ``corporate_actions`` table:
the broker (:class:`~pipelines.execution.PaperBroker`, through a price source that can
answer :class:`CorporateActionSource`) once per account and action, our own books
(:func:`~pipelines.execution.reconcile.reconcile_day`) to the previous positions before
the day's fills, so reconciliation keeps matching and a split is not P&L.

Orders decided on the evening before a split are in the old share basis;
:func:`split_ratios` lets order generation restate targets, positions and decision prices
in the trade date's basis (see :func:`pipelines.execution.execute.execute_day`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.lake.buffered import BufferedStore
from pipelines.lake.interface import Store

ActionType = Literal["split", "dividend"]


@dataclass(frozen=True)
class BookAction:
    """One corporate action as a book applies it (``ratio`` for splits, ``amount`` for
    dividends)."""

    security_id: str
    ex_date: dt.date
    action_type: ActionType
    action_id: str
    ratio: float = 1.0
    amount: float = 0.0

    @property
    def key(self) -> str:
        """Unique per action: what a book records to apply it exactly once."""
        return f"{self.security_id}|{self.action_type}|{self.action_id}|{self.ex_date}"

    def sort_key(self) -> tuple[dt.date, str, str, str]:
        # Dividends before splits on one ex-date: the amount is per share of record (old
        # basis), so it must meet the pre-split quantity.
        order = "0" if self.action_type == "dividend" else "1"
        return (self.ex_date, self.security_id, order, self.action_id)


@dataclass(frozen=True)
class AppliedAction:
    """What one action did to one position."""

    action: BookAction
    quantity_before: float
    quantity_after: float
    cash: float

    def event(self) -> dict[str, object]:
        """An audit/broker-state record of the application."""
        a = self.action
        return {
            "key": a.key,
            "security_id": a.security_id,
            "ex_date": a.ex_date.isoformat(),
            "action_type": a.action_type,
            "action_id": a.action_id,
            "ratio": a.ratio,
            "amount": a.amount,
            "quantity_before": self.quantity_before,
            "quantity_after": self.quantity_after,
            "cash": self.cash,
        }


@runtime_checkable
class CorporateActionSource(Protocol):
    """Corporate actions in force, as known now (the source's knowledge time)."""

    def corporate_actions(
        self, security_ids: Sequence[str], after: dt.date | None = None
    ) -> list[BookAction]:
        """Actions on ``security_ids`` with ``after < ex_date <=`` :meth:`actions_through`,
        oldest first (:meth:`BookAction.sort_key`)."""
        ...

    def actions_through(self) -> dt.date:
        """The last session whose corporate actions are in force as known now."""
        ...


def _finite(value: object) -> float | None:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


_ACTION_COLUMNS = ("action_type", "valid_date", "security_id", "action_id", "ratio", "amount")


def lake_corporate_actions(
    store: Store,
    security_ids: Iterable[str],
    *,
    known_at: dt.datetime,
    after: dt.date | None,
    through: dt.date,
) -> list[BookAction]:
    """The splits and cash dividends of ``security_ids`` with ``after < ex_date <= through``
    as known at ``known_at``, oldest first. Rows a book cannot apply (a split without a
    positive ratio, a dividend without a finite amount) are skipped: the data contract
    quarantines them before they reach the lake."""
    ids = sorted({str(s) for s in security_ids})
    if not ids:
        return []
    start = (after + dt.timedelta(days=1)) if after is not None else dt.date(1900, 1, 1)
    if start > through:
        return []
    wanted = pa.array(ids, pa.string())
    if isinstance(store, BufferedStore):
        # Every security's actions of the window, then ours: the same rows (an action's
        # version depends only on its own key's rows; the list is sorted below), from one
        # read that the store keeps for the session's other books (the broker's, ours,
        # the orders' split restatement) instead of one filtered read per book.
        table = store.as_of("corporate_actions", known_at=known_at, valid_at=(start, through))
        if table.num_rows:
            table = table.filter(pc.is_in(table.column("security_id"), value_set=wanted))
    else:
        table = store.as_of(
            "corporate_actions",
            known_at=known_at,
            valid_at=(start, through),
            filter=pc.field("security_id").isin(wanted),
        )
    if not table.num_rows:  # most sessions: nothing to convert
        return []
    # Only the columns read below, each as Python values (what the frame's records hold
    # for them), instead of converting every column and boxing every cell.
    used = [c for c in _ACTION_COLUMNS if c in table.column_names]
    columns = _python_columns(table.select(used))
    out: list[BookAction] = []
    for rec in ({c: v[i] for c, v in columns.items()} for i in range(table.num_rows)):
        kind = str(rec["action_type"])
        ex = rec["valid_date"]
        ex_date = ex if isinstance(ex, dt.date) else dt.date.fromisoformat(str(ex)[:10])
        common = {
            "security_id": str(rec["security_id"]),
            "ex_date": ex_date,
            "action_id": str(rec.get("action_id") or ""),
        }
        if kind == "split":
            ratio = _finite(rec.get("ratio"))
            if ratio is not None and ratio > 0:
                out.append(BookAction(action_type="split", ratio=ratio, **common))  # type: ignore[arg-type]
        elif kind == "dividend":
            amount = _finite(rec.get("amount"))
            if amount is not None:
                out.append(BookAction(action_type="dividend", amount=amount, **common))  # type: ignore[arg-type]
    return sorted(out, key=BookAction.sort_key)


def _python_columns(table: pa.Table) -> dict[str, list[object]]:
    """Each column of ``table`` as the Python values its pandas frame's ``tolist`` gives,
    for the uses above (a null float is None instead of NaN: :func:`_finite` reads both as
    missing): Arrow's own conversion of the few rows, without building a frame. Only for
    the usual types (a date32 valid date, strings, floats); anything else through pandas."""
    simple = all(
        pa.types.is_string(f.type)
        or pa.types.is_floating(f.type)
        or (f.name == "valid_date" and pa.types.is_date32(f.type))
        for f in table.schema
    )
    if simple:
        return {c: table.column(c).to_pylist() for c in table.column_names}
    frame = table.to_pandas()
    return {c: frame[c].tolist() for c in table.column_names}


def apply_actions(
    positions: Mapping[str, float], actions: Iterable[BookAction]
) -> tuple[dict[str, float], float, list[AppliedAction]]:
    """Apply ``actions`` (oldest first) to ``positions``: the new positions, the cash they
    pay (dividends; negative for shorts) and one :class:`AppliedAction` per action that
    met a non-zero position."""
    book = {str(s): float(q) for s, q in positions.items()}
    cash = 0.0
    applied: list[AppliedAction] = []
    for a in sorted(actions, key=BookAction.sort_key):
        qty = book.get(a.security_id, 0.0)
        if abs(qty) <= 1e-9:
            continue
        if a.action_type == "split":
            book[a.security_id] = qty * a.ratio
            applied.append(AppliedAction(a, qty, qty * a.ratio, 0.0))
        else:
            cash += qty * a.amount
            applied.append(AppliedAction(a, qty, qty, qty * a.amount))
    return book, cash, applied


def split_ratios(actions: Iterable[BookAction], ex_date: dt.date) -> dict[str, float]:
    """The combined split ratio per security on ``ex_date`` (securities without a split
    are absent)."""
    out: dict[str, float] = {}
    for a in actions:
        if a.action_type == "split" and a.ex_date == ex_date:
            out[a.security_id] = out.get(a.security_id, 1.0) * a.ratio
    return out


__all__ = [
    "AppliedAction",
    "BookAction",
    "CorporateActionSource",
    "apply_actions",
    "lake_corporate_actions",
    "split_ratios",
]
