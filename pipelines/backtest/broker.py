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
from collections.abc import Iterator, Sequence
from typing import Any

from pipelines.execution import PaperBroker
from pipelines.execution.accounts import State, empty_state
from pipelines.execution.corporate_actions import BookAction
from pipelines.execution.delistings import Delisting
from pipelines.execution.prices import LakePriceSource, PriceSource, SessionBar


class MemoryAccount:
    """An account document held in this object (one process, no lock needed)."""

    def __init__(self, seq: int = 0) -> None:
        self.state: State = empty_state()
        self.state["seq"] = seq

    @property
    def location(self) -> str:
        return "memory"

    def prepare(self) -> None:
        return None

    @contextlib.contextmanager
    def open(self, write: bool = True) -> Iterator[State]:
        yield self.state


class InMemoryPaperBroker(PaperBroker):
    """A :class:`PaperBroker` whose state lives in this object (never written anywhere)."""

    def __init__(self, prices: PriceSource, *, id_base: int = 0, **kwargs: Any) -> None:
        """``id_base`` starts the broker's order/fill id sequence: give each run its own,
        since the lake keys fills by the broker's execution id."""
        self.memory = MemoryAccount(id_base)
        super().__init__(self.memory, prices, **kwargs)

    def account_state(self) -> State:
        """A copy of the whole account (positions, cash, orders, id sequence)."""
        return copy.deepcopy(self.memory.state)

    def restore_account(self, state: State) -> None:
        """Continue from an :meth:`account_state` (a resumed backtest)."""
        self.memory.state = copy.deepcopy(state)


class CachedPrices:
    """A point-in-time price source whose answers are memoized per knowledge time.

    The paper broker asks for a session's bars every time a position or the cash is read;
    in a backtest the answer only changes when the simulated clock (``known_at``) moves.
    """

    def __init__(self, source: LakePriceSource) -> None:
        self.source = source
        self._cache: dict[tuple[object, ...], dict[str, SessionBar]] = {}
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
        key = (trade_date, tuple(sorted(security_ids)))
        if key not in self._cache:
            self._cache[key] = self.source.session(trade_date, security_ids)
        return self._cache[key]

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
