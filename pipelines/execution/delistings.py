"""Delistings: a held security that stops trading becomes cash at its delisting price.

The security master says when a security delisted: its version in force on a session has
``listed = false`` (effective from ``delist_date``, else the version's ``valid_date``) and
the vendor's ``delist_reason`` (``ACQUIRED``, ``BANKRUPTCY``, ...). A position in it is
converted to cash on the first session, as known at that session's cutoff, on which the
delisting is in force:

* **delisting price** = the last close known at or before the effective date, times
  ``1 + delist_return`` when the data declares a delisting return (the simulated vendor
  does not: its delisting date is the last trading day, so the last close is the price);
* the broker (:class:`~pipelines.execution.PaperBroker`) books the cash-out in its account,
  and our own books (:func:`~pipelines.execution.reconcile.reconcile_day`) book the same
  from the same point-in-time security master, so reconciliation still matches.

:func:`lake_delistings` answers for a lake; a price source that can also answer
(:class:`DelistingSource`) lets the paper broker settle delistings by itself.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.lake.buffered import BufferedStore
from pipelines.lake.interface import Store
from pipelines.timeline import trading_calendar

# How far back the last close before a delisting is looked for.
_PRICE_LOOKBACK = dt.timedelta(days=3660)
_MASTER_COLUMNS = (
    "security_id",
    "valid_date",
    "listed",
    "delist_date",
    "delist_reason",
    "delist_return",
)


@dataclass(frozen=True)
class Delisting:
    """One security's delisting: when, at what price, and why (the vendor's reason)."""

    security_id: str
    effective_date: dt.date
    price: float
    reason: str | None = None
    last_close_date: dt.date | None = None


@runtime_checkable
class DelistingSource(Protocol):
    """Delistings in force, as known now (the source's knowledge time)."""

    def delistings(self, security_ids: Sequence[str]) -> dict[str, Delisting]:
        """The delistings of ``security_ids`` in force by the session known now."""
        ...


def session_of(known_at: dt.datetime) -> dt.date:
    """The exchange-local date of a knowledge time (the session a cutoff belongs to)."""
    cal = trading_calendar()
    return known_at.astimezone(cal.tz).date()


def lake_delistings(
    store: Store, security_ids: Sequence[str], *, known_at: dt.datetime, through: dt.date
) -> dict[str, Delisting]:
    """The delistings of ``security_ids`` in force on ``through`` as known at ``known_at``
    (module doc); securities without a delisting are absent."""
    ids = sorted({str(s) for s in security_ids})
    if not ids:
        return {}
    if not _may_be_delisted(store, ids, known_at, through):
        return {}
    id_filter = pc.field("security_id").isin(pa.array(ids, pa.string()))
    table = store.as_of("security_master", known_at=known_at, valid_at=through, filter=id_filter)
    # No row says "not listed" (a null is not a delisting): no security's latest row does
    # either. The usual answer, without the pandas conversion and grouping.
    if (
        "listed" in table.column_names
        and pa.types.is_boolean(table.column("listed").type)
        and not pc.any(pc.invert(table.column("listed"))).as_py()
    ):
        return {}
    # Only the columns read below (the master has many): the same values, converted once.
    master = table.select([c for c in _MASTER_COLUMNS if c in table.column_names]).to_pandas()
    if master.empty:
        return {}
    master = master.sort_values("valid_date").groupby("security_id").tail(1)
    master = master[master["listed"].notna() & ~master["listed"].fillna(True).astype(bool)]
    if master.empty:
        return {}
    effective: dict[str, dt.date] = {}
    reasons: dict[str, str | None] = {}
    returns: dict[str, float] = {}
    for row in master.to_dict("records"):
        sid = str(row["security_id"])
        day = row.get("delist_date")
        day = row["valid_date"] if day is None or pd.isna(day) else day
        effective[sid] = pd.Timestamp(day).date()
        reason = row.get("delist_reason")
        reasons[sid] = None if reason is None or pd.isna(reason) or not reason else str(reason)
        ret = row.get("delist_return")
        if ret is not None and not pd.isna(ret):
            returns[sid] = float(ret)
    effective = {s: d for s, d in effective.items() if d <= through}
    if not effective:
        return {}
    prices = store.as_of(
        "prices",
        known_at=known_at,
        valid_at=(min(effective.values()) - _PRICE_LOOKBACK, max(effective.values())),
        columns=["security_id", "close"],
        filter=pc.field("security_id").isin(pa.array(sorted(effective), pa.string())),
    ).to_pandas()
    out: dict[str, Delisting] = {}
    for sid, day in sorted(effective.items()):
        rows = prices[
            (prices["security_id"] == sid)
            & (pd.to_datetime(prices["valid_date"]).dt.date <= day)
            & prices["close"].notna()
        ]
        rows = rows[rows["close"].astype(float) > 0]
        if rows.empty:
            continue  # no price ever known: cannot value the cash-out yet
        last = rows.sort_values("valid_date").iloc[-1]
        price = float(last["close"]) * (1.0 + returns.get(sid, 0.0))
        if not math.isfinite(price):
            continue
        out[sid] = Delisting(
            security_id=sid,
            effective_date=day,
            price=max(price, 0.0),
            reason=reasons.get(sid),
            last_close_date=pd.Timestamp(last["valid_date"]).date(),
        )
    return out


def _may_be_delisted(store: Store, ids: list[str], known_at: dt.datetime, through: dt.date) -> bool:
    """False when the master in force on ``through`` (as known at ``known_at``) has no row
    saying "not listed" for any of ``ids``, i.e. :func:`lake_delistings` answers nothing
    (its first test, on the rows of ``ids``). Asked of every security (a row's version
    depends only on its own security's rows), so the read is the same for every caller
    of a session — the broker's two passes and reconciliation, on different books — and
    a store that keeps its answers (the backtest's buffered store) resolves it once.
    True when unsure (no boolean ``listed`` column): the full test decides."""
    if not isinstance(store, BufferedStore):
        return True  # a read of every security would cost more than the filtered one
    table = store.as_of(
        "security_master", known_at=known_at, valid_at=through, columns=["security_id", "listed"]
    )
    if "listed" not in table.column_names or not pa.types.is_boolean(table.column("listed").type):
        return True
    unlisted = table.filter(pc.equal(table.column("listed"), False)).column("security_id")
    if not len(unlisted):
        return False
    return bool(pc.any(pc.is_in(pa.array(ids, pa.string()), value_set=unlisted)).as_py())


__all__ = ["Delisting", "DelistingSource", "lake_delistings", "session_of"]
