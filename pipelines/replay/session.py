"""Replay a past session's decision from the lake and diff it against what was stored.

``replay_sessions(lake, [D], portfolio_id)`` recomputes session ``D``'s risk model,
targets, orders and pre-trade verdicts with the daily loop's own stage functions
(:mod:`pipelines.daily.stages`: ``research`` → ``risk_model`` → ``optimize`` →
``pretrade`` → ``approve`` (the PM's recorded answer) → ``execute``), on a
:class:`~pipelines.replay.store.ReplayStore` (the lake as the session's run found it:
capped at its cutoff and at the rows committed before the run began; writes kept in memory
and dropped), with

* the book the session decided from (:class:`~pipelines.replay.book.RecordedBook`: the
  broker's positions and cash as our reconciliation recorded them for the session);
* the config, policy and limits the session recorded (stage state ``session_config``:
  the config's fields, the policy and limits files' text), else the ones given;
* the model then champion, and every other input, through the capped reads;
* the optimizer's warm-start chain: a solve warm-started from the previous one differs from
  a cold solve in its last bits, so the sessions the recorded chain
  (``session_config.warm_after``) links back to are re-solved first, in order, from a
  fresh optimizer — as the original process did.

Then each artefact is compared, bit for bit (:mod:`pipelines.replay.diff`), with what the
lake holds for the session now: the stage states (``risk_model``; ``book`` and
``targets``; ``pretrade``) and, when the session recorded them, the tables (``risk_*``;
``target_portfolios``, ``target_risk``, ``solve_log``; ``orders``; ``execution_audit``'s
pre-trade checks). Nothing is written to the lake.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
import pyarrow.compute as pc
import yaml

from pipelines.daily import stages
from pipelines.daily.config import DailyConfig
from pipelines.errors import AlphaFactoryError
from pipelines.execution.records import read_day
from pipelines.lake import Lake, get_table
from pipelines.lake.bitemporal import ValidRange
from pipelines.lake.interface import Store
from pipelines.lake.stage_state import TABLE as STAGE_STATE
from pipelines.lake.stage_state import StageState
from pipelines.replay.book import RecordedBook
from pipelines.replay.diff import first_difference, rows_difference
from pipelines.replay.store import ReplayStore
from pipelines.timeline import LATEST, decision_cutoff, trading_calendar

log = logging.getLogger(__name__)

IDENTICAL = "bit-identical"
#: The artefacts a replay compares, in report order.
ARTEFACTS = ("risk model", "targets", "orders", "pre-trade verdicts")


class ReplayError(AlphaFactoryError, LookupError):
    """A session cannot be replayed (its run is not in the lake)."""


@dataclass(frozen=True)
class ArtefactDiff:
    """One artefact of a replayed session: bit-identical (``difference`` None) or the
    first difference; ``compared`` names what was compared (stage states, tables)."""

    artefact: str
    difference: str | None
    compared: tuple[str, ...]

    @property
    def identical(self) -> bool:
        return self.difference is None


@dataclass
class SessionReplay:
    """The replay of one session: how it was recomputed and each artefact's verdict."""

    session: dt.date
    portfolio_id: str
    trade_date: dt.date
    #: Where the book came from (``reconciliation``: the broker's, as recorded; ``positions``).
    book_source: str
    #: ``recorded`` (the session's own config, policy and limits) or ``current``.
    settings: str
    #: Whether our own positions book agreed with the broker's book the replay used.
    book_check: str = ""
    #: The solves re-run before this one to rebuild the optimizer's warm start.
    warm_chain: tuple[tuple[str, dt.date], ...] = ()
    skipped: str | None = None
    artefacts: list[ArtefactDiff] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def identical(self) -> bool:
        return all(a.identical for a in self.artefacts)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["session"] = self.session.isoformat()
        out["trade_date"] = self.trade_date.isoformat()
        out["warm_chain"] = [[p, d.isoformat()] for p, d in self.warm_chain]
        out["identical"] = self.identical
        out["artefacts"] = [
            {
                "artefact": a.artefact,
                "identical": a.identical,
                "result": a.difference or IDENTICAL,
                "compared": list(a.compared),
            }
            for a in self.artefacts
        ]
        return out


Node = tuple[str, dt.date]


def run_started(lake: Lake, portfolio_id: str, day: dt.date) -> dt.datetime | None:
    """When the session's run began: the ingestion time of its first ``stage_state`` row
    (None when it never ran)."""
    rows = lake.candidates(
        STAGE_STATE,
        LATEST,
        ValidRange(day, day),
        ["portfolio_id"],
        pc.field("portfolio_id") == portfolio_id,
    )
    if not rows.num_rows:
        return None
    first = pc.min(rows.column("_ingested_at")).as_py()
    return first if isinstance(first, dt.datetime) else None


def _recorded(lake: Lake, node: Node) -> dict[str, Any] | None:
    found: dict[str, Any] | None = StageState(lake, node[0], node[1]).find("session_config")
    return found


def warm_chain(lake: Lake, node: Node) -> list[Node]:
    """The solves ``node``'s optimizer warm start followed, oldest first, ending with it."""
    chain = [node]
    seen = {node}
    record = _recorded(lake, node)
    while record is not None and record.get("warm_after"):
        pid, day = record["warm_after"]
        prev = (str(pid), dt.date.fromisoformat(str(day)))
        if prev in seen:  # a re-run session linking back to itself: the chain ends
            break
        chain.append(prev)
        seen.add(prev)
        record = _recorded(lake, prev)
    return chain[::-1]


@dataclass
class _Session:
    """One session's replay context (its store, book, settings)."""

    node: Node
    ctx: stages.DayContext
    store: ReplayStore
    book: RecordedBook
    settings: str


def _context(lake: Lake, node: Node, fallback: DailyConfig) -> _Session:
    from pipelines.portfolio.policy import Policy
    from pipelines.risk.pretrade import RiskLimits

    pid, day = node
    record = _recorded(lake, node)
    policy = limits = None
    if record is not None:
        cfg = DailyConfig.model_validate(record["config"])
        policy = Policy.model_validate(yaml.safe_load(record["policy"]["yaml"]))
        limits = RiskLimits.model_validate(yaml.safe_load(record["limits"]["yaml"]))
        settings = (
            f"recorded (policy {record['policy']['name']} {record['policy']['sha256'][:12]}, "
            f"limits {record['limits']['name']} {record['limits']['sha256'][:12]})"
        )
    else:
        cfg = fallback.model_copy(update={"portfolio_id": pid})
        settings = "current (the session recorded none)"
    store = ReplayStore(lake, decision_cutoff(day), run_started(lake, pid, day))
    book = RecordedBook(lake, pid, day, name=_broker_name(lake, pid, day))
    ctx = stages.DayContext(
        lake=lake,
        day=day,
        config=cfg,
        broker=book,
        scores_source=stages.score_source(cfg),
        buffer=store,
        pinned_policy=policy,
        pinned_limits=limits,
    )
    return _Session(node, ctx, store, book, settings)


def _broker_name(lake: Lake, portfolio_id: str, day: dt.date) -> str:
    """The venue the session's orders were recorded for (its reconciliation's broker)."""
    rec = read_day(lake, "reconciliation", day, portfolio_id, known_at=decision_cutoff(day))
    names: list[str] = sorted(rec["broker"].dropna().astype(str).unique()) if len(rec) else []
    return names[0] if names else "paper"


def _decide(session: _Session) -> None:
    """The stages that feed the optimizer: scores, risk model, targets."""
    ctx = session.ctx
    stages.research(ctx)
    stages.risk_model(ctx)
    stages.optimize(ctx)


def _trade(session: _Session, lake: Lake) -> None:
    """Pre-trade preview, the PM's recorded answer, and the orders ``execute`` derives
    and checks (sent nowhere: the book's broker only acknowledges)."""
    ctx = session.ctx
    stages.pretrade(ctx)
    approval = StageState(lake, ctx.portfolio_id, ctx.day).find("approval")
    if approval is not None:
        stages.approve(ctx, approval["decision"], actor=str(approval["actor"]))
        stages.execute(ctx)


def replay_sessions(
    lake: Lake,
    sessions: Sequence[dt.date],
    portfolio_id: str,
    *,
    config: DailyConfig | None = None,
) -> list[SessionReplay]:
    """Replay each of ``sessions`` for ``portfolio_id`` and diff it (module doc).

    Sessions sharing a warm-start chain are replayed in one pass. ``config`` stands in for
    a session that recorded no settings (default: the deployment's). Raises
    :class:`ReplayError` when a session has no run of the portfolio in the lake.
    """
    from pipelines.portfolio import optimizer

    fallback = config or DailyConfig.from_env()
    wanted = sorted(set(sessions))
    chains: dict[Node, list[Node]] = {}
    for day in wanted:
        node = (portfolio_id, day)
        if run_started(lake, portfolio_id, day) is None:
            raise ReplayError(
                f"no run of portfolio {portfolio_id!r} for session {day} in the lake at "
                f"{lake.location.root} (nothing to replay; check --portfolio)"
            )
        chains[node] = warm_chain(lake, node)
    # One pass per chain: a chain that another one extends is replayed inside it.
    passes: list[list[Node]] = []
    for chain in sorted(chains.values(), key=len, reverse=True):
        if not any(p[: len(chain)] == chain for p in passes):
            passes.append(chain)
    results: dict[Node, SessionReplay] = {}
    try:
        for chain in passes:
            optimizer._CACHE.clear()  # the chain starts from a fresh optimizer, as it did
            for i, node in enumerate(chain):
                began = time.perf_counter()
                session = _context(lake, node, fallback)
                if node in chains and node not in results:
                    results[node] = _replay_one(lake, session, tuple(chain[:i]))
                    results[node].seconds = time.perf_counter() - began
                elif session.ctx.skip_reason is None:
                    _decide(session)
    finally:
        # The next solve in this process must not warm-start from a replay's.
        optimizer._CACHE.clear()
    return [results[(portfolio_id, day)] for day in wanted]


def replay_session(
    lake: Lake, session: dt.date, portfolio_id: str, *, config: DailyConfig | None = None
) -> SessionReplay:
    """Replay one session (:func:`replay_sessions`)."""
    return replay_sessions(lake, [session], portfolio_id, config=config)[0]


def _replay_one(lake: Lake, session: _Session, chain: tuple[Node, ...]) -> SessionReplay:
    ctx = session.ctx
    out = SessionReplay(
        session=ctx.day,
        portfolio_id=ctx.portfolio_id,
        trade_date=ctx.trade_date,
        book_source=session.book.source,
        settings=session.settings,
        book_check=session.book.check(),
        warm_chain=chain,
        skipped=ctx.skip_reason,
    )
    if ctx.skip_reason is None:
        _decide(session)
        _trade(session, lake)
    out.artefacts = compare(
        lake,
        session.store,
        ctx.portfolio_id,
        ctx.day,
        ctx.trade_date,
        portfolio_tables=ctx.config.record_portfolio_tables,
    )
    return out


# --- comparison ---------------------------------------------------------------------------

_RISK_TABLES = ("risk_exposures", "risk_factor_covariance", "risk_specific", "risk_factor_returns")
_TARGET_TABLES = ("target_portfolios", "target_risk", "solve_log")


def compare(
    lake: Lake,
    store: ReplayStore,
    portfolio_id: str,
    day: dt.date,
    trade_date: dt.date,
    *,
    portfolio_tables: bool = True,
) -> list[ArtefactDiff]:
    """Each artefact of the session as stored in ``lake`` against the one ``store`` holds;
    the risk and target tables only when the session recorded them (``portfolio_tables``:
    the risk tables are keyed by model, not portfolio, so another run's rows are there)."""
    stored_state = StageState(lake, portfolio_id, day)
    replayed_state = StageState(store.written(), portfolio_id, day)
    mine = store.written()

    def states(*names: str) -> tuple[str | None, list[str]]:
        for name in names:
            found = first_difference(stored_state.find(name), replayed_state.find(name), name)
            if found:
                return f"stage state {found}", [f"stage_state.{n}" for n in names]
        return None, [f"stage_state.{n}" for n in names]

    def tables(
        names: Sequence[str], valid: dt.date, portfolio: bool, extra: Any = None
    ) -> tuple[str | None, list[str]]:
        compared: list[str] = []
        for name in names:
            flt = pc.field("portfolio_id") == portfolio_id if portfolio else None
            if extra is not None:
                flt = extra if flt is None else flt & extra
            stored = _rows(lake, name, valid, flt)
            replayed = _rows(mine, name, valid, flt)
            if stored.empty and replayed.empty:
                continue
            compared.append(name)
            key = [*get_table(name).key, "valid_date"]
            found = rows_difference(stored, replayed, key, name)
            if found:
                return found, compared
        return None, compared

    verdicts: list[ArtefactDiff] = []
    diff, what = states("risk_model")
    if diff is None and portfolio_tables:
        diff, more = tables(_RISK_TABLES, day, portfolio=False)
        what += more
    verdicts.append(ArtefactDiff("risk model", diff, tuple(what)))
    diff, what = states("book", "targets")
    if diff is None and portfolio_tables:
        diff, more = tables(_TARGET_TABLES, day, portfolio=True)
        what += more
    verdicts.append(ArtefactDiff("targets", diff, tuple(what)))
    diff, what = tables(("orders",), trade_date, portfolio=True)
    verdicts.append(ArtefactDiff("orders", diff, tuple(what) or ("orders (none)",)))
    diff, what = states("pretrade")
    if diff is None:
        diff, more = tables(
            ("execution_audit",), trade_date, portfolio=True, extra=pc.field("stage") == "pretrade"
        )
        what += [f"{m} (pretrade)" for m in more]
    verdicts.append(ArtefactDiff("pre-trade verdicts", diff, tuple(what)))
    return verdicts


def _rows(store: Store, name: str, valid: dt.date, flt: Any) -> pd.DataFrame:
    """The latest version of every row of ``name`` for ``valid`` (business columns)."""
    frame = store.as_of(name, known_at=LATEST, valid_at=valid, filter=flt).to_pandas()
    return frame[[c for c in frame.columns if not c.startswith("_") and c != "valid_until"]]


def sessions_of(lake: Lake, portfolio_id: str, start: dt.date, end: dt.date) -> list[dt.date]:
    """The sessions in ``[start, end]`` that have a run of ``portfolio_id`` in the lake."""
    return [
        d for d in trading_calendar().sessions(start, end) if run_started(lake, portfolio_id, d)
    ]


__all__ = [
    "ARTEFACTS",
    "IDENTICAL",
    "ArtefactDiff",
    "ReplayError",
    "SessionReplay",
    "replay_session",
    "replay_sessions",
    "run_started",
    "sessions_of",
    "warm_chain",
]
