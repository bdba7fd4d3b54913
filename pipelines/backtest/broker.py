"""The paper broker for in-process backtests: same fills, state kept in memory.

:class:`~pipelines.execution.PaperBroker` persists its whole state as JSON after every
change (so several processes can share it); over hundreds of simulated sessions that
rewrite dominates the run. A backtest is one process, so this subclass keeps the state
in memory. Order handling, fill prices, partial fills and costs are the paper broker's.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import itertools
from collections.abc import Iterator, Sequence
from typing import Any

from pipelines.execution import PaperBroker
from pipelines.execution.accounts import State, empty_state
from pipelines.execution.broker import Fill
from pipelines.execution.corporate_actions import BookAction
from pipelines.execution.delistings import Delisting
from pipelines.execution.paper import _fill, is_working
from pipelines.execution.prices import LakePriceSource, PriceSource, SessionBar


class MemoryAccount:
    """An account document held in this object (one process, no lock needed)."""

    def __init__(self, seq: int = 0) -> None:
        self.state: State = empty_state()
        self.state["seq"] = seq
        #: Bumped by every opening for writing: equal versions, the same state.
        self.version = 0

    @property
    def location(self) -> str:
        return "memory"

    def prepare(self) -> None:
        return None

    @contextlib.contextmanager
    def open(self, write: bool = True) -> Iterator[State]:
        if write:
            self.version += 1
        yield self.state


class InMemoryPaperBroker(PaperBroker):
    """A :class:`PaperBroker` whose state lives in this object (never written anywhere)."""

    def __init__(self, prices: PriceSource, *, id_base: int = 0, **kwargs: Any) -> None:
        """``id_base`` starts the broker's order/fill id sequence: give each run its own,
        since the lake keys fills by the broker's execution id."""
        self.memory = MemoryAccount(id_base)
        super().__init__(self.memory, prices, **kwargs)
        # Orders that may still be working: the account keeps every order of the run, and
        # the broker asks which are working many times a session (see _working).
        self._open: dict[str, dict[str, Any]] = {}
        self._seen = 0
        self._indexed: State | None = None
        # (account version, knowledge time) after the last full work(): see work().
        self._worked: tuple[int, object] | None = None
        # The fills list indexed by _fills_on, how many of its fills, and their positions
        # by trade date.
        self._fill_list: list[dict[str, Any]] | None = None
        self._fills_seen = 0
        self._fill_days: dict[str, list[int]] = {}

    def account_state(self) -> State:
        """A copy of the whole account (positions, cash, orders, id sequence)."""
        return copy.deepcopy(self.memory.state)

    def restore_account(self, state: State) -> None:
        """Continue from an :meth:`account_state` (a resumed backtest)."""
        self.memory.state = copy.deepcopy(state)
        self.memory.version += 1

    def forget_settled(self, through: dt.date) -> int:
        """Drop the finished orders and the fills with a trade date on or before
        ``through`` (a session already reconciled), and the corporate actions and
        delistings booked with an ex/effective date on or before it: nothing asks for them
        again (a session asks the broker about its own trade date's orders and fills; the
        booked events are a history only the broker's own accessors return), and a
        ten-year run would otherwise copy every order it ever sent and every dividend it
        ever received at each checkpoint. Returns the records dropped."""
        day = through.isoformat()
        with self._state() as st:
            orders = st["orders"]
            keep = {k: r for k, r in orders.items() if is_working(r) or r["trade_date"] > day}
            fills = [f for f in st["fills"] if f["trade_date"] > day]
            dropped = len(orders) - len(keep) + len(st["fills"]) - len(fills)
            st["orders"], st["fills"] = keep, fills
            for key, date in (("corporate_actions", "ex_date"), ("delistings", "effective_date")):
                if key in st:
                    events = [e for e in st[key] if e[date] > day]
                    dropped += len(st[key]) - len(events)
                    st[key] = events
        self._indexed = None  # the order dict was replaced: index it again
        return dropped

    def _working(self, st: State) -> list[dict[str, Any]]:
        """The working orders in arrival order, as :class:`PaperBroker` finds them, without
        scanning every order of the run: orders are only ever added (in arrival order) and
        a terminal order never works again, so the orders seen once and still working, plus
        those added since, are all of them."""
        orders = st["orders"]
        if st is not self._indexed:
            self._open, self._seen, self._indexed = {}, 0, st
        if len(orders) > self._seen:
            for rec in itertools.islice(orders.values(), self._seen, None):
                self._open[rec["client_order_id"]] = rec
            self._seen = len(orders)
        self._open = {k: r for k, r in self._open.items() if is_working(r)}
        return list(self._open.values())

    def fills(self, account: str, trade_date: dt.date | None = None) -> list[Fill]:
        """:meth:`PaperBroker.fills`; a day's from an index of the fills by trade date
        (kept as fills are booked) instead of a scan of every fill the account holds."""
        if trade_date is None:
            return super().fills(account, trade_date)
        self._require()
        self._auto_work()
        day = trade_date.isoformat()
        with self._state(write=False) as st:
            fills = st["fills"]
            return [
                _fill(fills[i])
                for i in self._fills_on(fills, day)
                if fills[i]["account"] == account
            ]

    def _fills_on(self, fills: list[dict[str, Any]], day: str) -> list[int]:
        """The positions in ``fills`` of the fills of trade date ``day``, ascending. Fills
        are only ever appended to the list (a new list replaces it when settled fills are
        forgotten or an account restored): the index adds the fills booked since."""
        if fills is not self._fill_list or len(fills) < self._fills_seen:
            self._fill_list, self._fills_seen, self._fill_days = fills, 0, {}
        days = self._fill_days
        for i in range(self._fills_seen, len(fills)):
            days.setdefault(fills[i]["trade_date"], []).append(i)
        self._fills_seen = len(fills)
        return days.get(day, [])

    def work(self, trade_date: dt.date | None = None) -> int:
        """:meth:`PaperBroker.work`, skipped when nothing it depends on changed since the
        last full pass: the account (no write since) and the prices' knowledge time. Such
        a pass would find the same orders unfillable and every action already settled
        (a worked order always ends terminal), so it would change nothing and return 0."""
        key = (self.memory.version, self.prices_known_at())
        # No knowledge time: the source sees "now", which moves; always work.
        if trade_date is None and key[1] is not None and key == self._worked:
            return 0
        done = super().work(trade_date)
        if trade_date is None:
            self._worked = (self.memory.version, self.prices_known_at())
        return done

    def prices_known_at(self) -> object:
        """The price source's knowledge time (None when it has none)."""
        return getattr(self.prices, "known_at", None)


class CachedPrices:
    """A point-in-time price source whose answers are memoized per knowledge time.

    The paper broker asks for a session's bars every time a position or the cash is read;
    in a backtest the answer only changes when the simulated clock (``known_at``) moves.
    """

    def __init__(self, source: LakePriceSource) -> None:
        self.source = source
        self._cache: dict[dt.date, dict[str, SessionBar]] = {}
        self._delisted: dict[tuple[str, ...], dict[str, Delisting]] = {}
        self._actions: dict[tuple[object, ...], list[BookAction]] = {}

    @property
    def known_at(self) -> dt.datetime | None:
        return self.source.known_at

    @known_at.setter
    def known_at(self, value: dt.datetime) -> None:
        if value != self.source.known_at:
            self._cache.clear()
            self._delisted.clear()
            self._actions.clear()
        self.source.known_at = value

    def session(self, trade_date: dt.date, security_ids: Sequence[str]) -> dict[str, SessionBar]:
        # A bar depends only on its security's own rows (LakePriceSource.session_all), so
        # one read of every security's bar per session serves every later question (the
        # broker asks again, for one more name, after each order it is sent).
        bars = self.session_all(trade_date)
        return {s: bars[s] for s in sorted(security_ids) if s in bars}

    def session_all(self, trade_date: dt.date) -> dict[str, SessionBar]:
        """:meth:`LakePriceSource.session_all`, read once per session and knowledge time
        (reconciliation asks for the session the broker filled: the same bars). The
        answer is shared: callers must not change it."""
        bars = self._cache.get(trade_date)
        if bars is None:
            bars = {} if not self._published(trade_date) else self.source.session_all(trade_date)
            self._cache[trade_date] = bars
        return bars

    def _published(self, trade_date: dt.date) -> bool:
        """Whether the source knows any ``prices`` row of ``trade_date`` (else its
        :meth:`LakePriceSource.session_all` answers no bar: that read of the whole lookback
        window finds no row of the session). The broker asks every session for the next
        session's bars (the orders just sent), not published yet: one day's read answers."""
        known = self.source.known_at
        if known is None:
            return True  # the source sees "now": let it read
        if type(self.source).session_all is not LakePriceSource.session_all:
            return True  # another answer than the lake's bars: only the source can tell
        rows = self.source.lake.as_of(
            "prices", known_at=known, valid_at=(trade_date, trade_date), columns=["security_id"]
        )
        return rows.num_rows > 0

    def delistings(self, security_ids: Sequence[str]) -> dict[str, Delisting]:
        key = tuple(sorted(security_ids))
        if key not in self._delisted:
            self._delisted[key] = self.source.delistings(key)
        return self._delisted[key]

    def corporate_actions(
        self, security_ids: Sequence[str], after: dt.date | None = None
    ) -> list[BookAction]:
        key = (after, *sorted(security_ids))
        if key not in self._actions:
            self._actions[key] = self.source.corporate_actions(sorted(security_ids), after)
        return self._actions[key]

    def actions_through(self) -> dt.date:
        return self.source.actions_through()
