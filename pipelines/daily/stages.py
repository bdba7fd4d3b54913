"""The daily loop's stages: one function per stage, shared by the DAG tasks and the backtest.

Every stage is ``stage(ctx) -> summary`` (JSON-able): ``ctx`` is a :class:`DayContext`
(a :class:`~pipelines.lake.interface.StageContext`: ``store``, ``day``, ``now()``, plus the
portfolio's config and broker). A stage reads through ``ctx.store.as_of`` (point in time,
as of the session's cutoff) — including the previous stage's state
(:class:`~pipelines.lake.stage_state.StageState`, the lake's ``stage_state`` table) — and
writes only its declared tables through ``ctx.store.write``, so the same function runs as
one Airflow task on any worker (given only the lake URI and the session; nothing on local
disk) or as one step of an in-process loop. ``approve`` also takes the PM's answer.

Session ``D``'s run, after the close:

1. ``ingest``      — the vendor's files for ``D`` into the lake (the ``vendor_ingest`` DAG
   in production; a no-op when the data is already loaded, as in a backtest);
2. ``research``    — alpha scores for ``D`` (``alpha_scores`` or the builtin scorer);
3. ``risk_model``  — the factor model at ``D``'s close;
4. ``optimize``    — targets for the next session from the broker's current positions;
5. ``pretrade``    — a preview of the orders and their pre-trade verdicts (for the PM);
6. ``approve``     — the PM's decision (auto-approval is a policy setting), audited;
7. ``execute``     — orders for the next session to the broker (nothing when rejected);
8. ``reconcile``   — ``D``'s fills, positions and cash against the broker; the book's NAV
   and P&L attribution into ``daily_book``;
9. ``report``      — the PM report for ``D``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.daily.config import DailyConfig
from pipelines.daily.protocols import Ingestor, RiskModelSource, ScoreSource
from pipelines.daily.scoring import AutoScores, BuiltinScores, LakeScores, PriceScores
from pipelines.errors import AlphaFactoryError, ConfigurationError
from pipelines.execution import Broker, LakePriceSource, PaperBroker
from pipelines.execution.accounts import account_store
from pipelines.execution.prices import PriceSource
from pipelines.lake import Lake
from pipelines.lake.interface import Store
from pipelines.lake.stage_state import StageState
from pipelines.pit.snapshot import MarketSnapshot, load_snapshot
from pipelines.portfolio.rebalance import Book
from pipelines.portfolio.risk_model import RiskModel
from pipelines.portfolio.styles import SnapshotRiskModel
from pipelines.portfolio.targets import TargetPortfolio
from pipelines.timeline import LATEST, decision_cutoff, system_clock, trading_calendar

if TYPE_CHECKING:
    from pipelines.portfolio.policy import Policy
    from pipelines.report.pm import ReportSubject
    from pipelines.risk.pretrade import RiskLimits

log = logging.getLogger(__name__)


class StageInputError(AlphaFactoryError, LookupError):
    """A stage's input is not in the lake (no scores, no close for a held security)."""


APPROVED = "approved"
REJECTED = "rejected"


class NoIngest:
    """The data is already in the lake (a backtest over loaded history): nothing to do."""

    def ingest(self, lake: Lake, day: dt.date) -> dict[str, int]:
        return {}


@dataclass
class VendorIngest:
    """Every declared feed for ``day`` through :func:`pipelines.ingest.runtime.ingest_day`
    (the live vendor over SFTP/REST, as the ``vendor_ingest`` DAG does); ``backdate``
    (a :class:`pipelines.ingest.knowledge.Backdate`) replays a past session as published."""

    backdate: Any = None

    def ingest(self, lake: Lake, day: dt.date) -> dict[str, int]:
        from pipelines.ingest.feed_spec import load_feeds
        from pipelines.ingest.runtime import ingest_day, ordered_feeds

        rows: dict[str, int] = {}
        for feed in ordered_feeds(load_feeds()):
            outcomes = ingest_day(lake, day, feed.name, backdate=self.backdate)
            rows[feed.name] = sum(int(o.rows or 0) for o in outcomes)
        return rows


def score_source(config: DailyConfig) -> ScoreSource:
    """The score source named by ``config.scorer``."""
    lake_scores = LakeScores(config.max_score_age_days)
    if config.scorer == "lake":
        return lake_scores
    if config.scorer == "builtin":
        return BuiltinScores()
    if config.scorer == "price":
        return PriceScores()
    return AutoScores(lake_scores)


def paper_broker(
    lake: Lake, config: DailyConfig, known_at: dt.datetime | None = None
) -> PaperBroker:
    """The embedded paper broker for ``config.portfolio_id`` (its account document under
    the lake root, :func:`~pipelines.execution.accounts.account_store`).

    It fills a session from the lake's prices once they are known at ``known_at`` (a
    task passes its session's cutoff, so re-running an old session never fills orders
    with bars published after it; None = everything in the lake).
    """
    return PaperBroker(
        account_store(lake.location.root, lake.location.options(), config.portfolio_id),
        LakePriceSource(lake, known_at=known_at or LATEST),
        initial_cash=config.initial_capital,
        clock=system_clock,
    )


@dataclass
class DayContext:
    """Everything a stage needs for one portfolio and session.

    ``clock`` stamps what the stages record (default: the session's cutoff, so a re-run
    or a backtest records the same knowledge times; live tasks may pass the wall clock).
    """

    lake: Lake
    day: dt.date
    config: DailyConfig
    broker: Broker
    scores_source: ScoreSource
    risk_source: RiskModelSource = field(default_factory=SnapshotRiskModel)
    ingestor: Ingestor = field(default_factory=NoIngest)
    clock: Callable[[], dt.datetime] | None = None
    #: A store in front of the lake (a backtest's write buffer); None = the lake itself.
    buffer: Store | None = None
    #: The policy and limits to decide under instead of loading ``config.policy`` and
    #: ``config.limits`` by name (a replay pins those a past session recorded).
    pinned_policy: Policy | None = None
    pinned_limits: RiskLimits | None = None

    @classmethod
    def from_settings(
        cls, day: dt.date, config: DailyConfig | None = None, *, live_ingest: bool = False
    ) -> DayContext:
        """The context of a DAG task or CLI run: the configured lake, the paper broker."""
        cfg = config or DailyConfig()
        lake = Lake.from_settings()
        return cls(
            lake=lake,
            day=day,
            config=cfg,
            broker=paper_broker(lake, cfg, decision_cutoff(day)),
            scores_source=score_source(cfg),
            ingestor=VendorIngest() if live_ingest else NoIngest(),
        )

    @property
    def store(self) -> Store:
        """Where stages read (``as_of``) and write their declared tables."""
        return self.lake if self.buffer is None else self.buffer

    @property
    def portfolio_id(self) -> str:
        return self.config.portfolio_id

    @cached_property
    def state(self) -> StageState:
        """The stages' working state for this portfolio and session (in the lake)."""
        return StageState.of(self, self.portfolio_id)

    @cached_property
    def previous_state(self) -> StageState:
        """The previous session's state (read only)."""
        previous = trading_calendar().previous_session(self.day)
        return StageState(self.store, self.portfolio_id, previous)

    @cached_property
    def snapshot(self) -> MarketSnapshot:
        return load_snapshot(self.store, self.day, self.config.lookback_sessions)

    @cached_property
    def skip_reason(self) -> str | None:
        """Why the session decides nothing new, or None.

        A session whose prices were not known at its cutoff (the vendor's folder came late,
        or not at all) has no tradable security as decided then: it writes no scores,
        targets or orders, and its book is marked at the last closes known (stale). The
        late prices are in the next session's history (its returns start from them).
        """
        close = self.snapshot.close
        today = pd.Timestamp(self.day)
        if today in close.index and close.loc[today].notna().any():
            return None
        from pipelines.ingest.quarantine import holding_note

        return (
            f"no close for {self.day} known at its cutoff {decision_cutoff(self.day).isoformat()}"
            " (its prices are late or missing"
            f"{holding_note(self.store, self.day, 'prices')}): no new scores, targets or orders"
        )

    @cached_property
    def trade_date(self) -> dt.date:
        """The session the day's orders work in."""
        return trading_calendar().next_session(self.day)

    def now(self) -> dt.datetime:
        return self.clock() if self.clock is not None else decision_cutoff(self.day)

    def policy(self) -> Policy:
        """The portfolio policy the session decides under."""
        from pipelines.portfolio.policy import load_policy

        return (
            self.pinned_policy
            if self.pinned_policy is not None
            else load_policy(self.config.policy)
        )

    def limits(self) -> RiskLimits:
        """The pre-trade limits the session checks against."""
        from pipelines.risk.pretrade import load_limits

        return (
            self.pinned_limits
            if self.pinned_limits is not None
            else load_limits(self.config.limits)
        )


# --- stages -------------------------------------------------------------------------------


def ingest(ctx: DayContext) -> dict[str, int]:
    """Stage 1: the session's vendor data into the lake."""
    return ctx.ingestor.ingest(ctx.lake, ctx.day)


def _skipped(ctx: DayContext) -> dict[str, Any] | None:
    """The summary of a stage in a session that decides nothing (:attr:`DayContext.skip_reason`)."""
    return None if ctx.skip_reason is None else {"skipped": ctx.skip_reason}


def research(ctx: DayContext) -> dict[str, Any]:
    """Stage 2: the day's alpha scores (state ``scores``); nothing in a skipped session."""
    if (skipped := _skipped(ctx)) is not None:
        return skipped
    scores = ctx.scores_source.scores(ctx.store, ctx.day, ctx.snapshot)
    if scores.empty:
        raise StageInputError(f"{ctx.day}: the score source returned no scores")
    scores = scores.sort_values("security_id").reset_index(drop=True)
    ctx.state.put("scores", scores)
    models = sorted(scores["model_id"].astype(str).unique())
    return {"securities": len(scores), "model_ids": models}


def risk_model(ctx: DayContext) -> dict[str, Any]:
    """Stage 3: the factor risk model at the day's close (state ``risk_model``); nothing
    in a skipped session."""
    if (skipped := _skipped(ctx)) is not None:
        return skipped
    model = ctx.risk_source.risk_model(ctx.store, ctx.day, ctx.snapshot)
    with np.errstate(divide="ignore", invalid="ignore"):
        parts = (model.B, model.F, model.D, model.predicted_beta())
    if not all(np.isfinite(np.asarray(a, dtype=float)).all() for a in parts):
        # A degenerate estimate (a factor with no variance, e.g. the market factor of a
        # handful of names over a few weeks) would reach the solver as NaN (betas divide by
        # the market variance) and end in a traceback there.
        raise StageInputError(
            f"{ctx.day}: the risk model is not finite ({model.n_assets} securities, "
            f"{model.n_factors} factors, {len(ctx.snapshot.returns)} sessions of returns): "
            "too few securities per factor or too little history"
        )
    if ctx.config.record_portfolio_tables:
        from pipelines.portfolio.stage import store_risk_model

        store_risk_model(ctx.store, model, known_at=decision_cutoff(ctx.day))
    ctx.state.put("risk_model", model)
    return {"securities": model.n_assets, "factors": list(model.factor_names)}


def held_marks(ctx: DayContext, security_ids: list[str]) -> tuple[dict[str, float], list[str]]:
    """Each held security's mark for the day and the stale ones.

    A security with a close on the session is marked at it; one without (halted, a late
    or missing print, a delisting not yet known) at the last close known at the cutoff —
    within the snapshot, else the latest in the lake — and listed as stale. A security
    with no close ever known is marked at 0 (and stale): a run never stops on a mark.
    """
    today = pd.Timestamp(ctx.day)
    close = ctx.snapshot.close
    # Plain dicts of the rows' values: a Series.get per held security was most of this.
    on_day = _as_dict(_row(close, today))
    last = _as_dict(ctx.snapshot.last_close())
    marks: dict[str, float] = {}
    stale: list[str] = []
    for s in sorted(security_ids):
        px = float(on_day.get(s, np.nan))
        if np.isfinite(px) and px > 0:
            marks[s] = px
            continue
        stale.append(s)
        px = float(last.get(s, np.nan))
        if np.isfinite(px) and px > 0:
            marks[s] = px
    lost = [s for s in stale if s not in marks]
    if lost:
        marks.update(_last_known_close(ctx, lost))
    for s in stale:
        if s not in marks:
            log.warning("%s: no close ever known for held %s; marked at 0", ctx.day, s)
            marks[s] = 0.0
    if stale:
        log.warning("%s: held securities marked at a stale close: %s", ctx.day, stale[:20])
    return marks, stale


def _as_dict(series: pd.Series) -> dict[Any, float]:
    """``series`` as {label: value} (what ``series.get(label)`` answers, for a unique index)."""
    return dict(zip(series.index.tolist(), series.to_numpy(dtype=float).tolist(), strict=True))


def _last_known_close(ctx: DayContext, security_ids: list[str]) -> dict[str, float]:
    """The latest positive close on or before the day, as known at its cutoff."""
    import pyarrow as pa
    import pyarrow.compute as pc

    frame = ctx.store.as_of(
        "prices",
        known_at=decision_cutoff(ctx.day),
        valid_at=(ctx.day - dt.timedelta(days=3660), ctx.day),
        columns=["security_id", "close"],
        filter=pc.field("security_id").isin(pa.array(security_ids, pa.string())),
    ).to_pandas()
    frame = frame[frame["close"].notna() & (frame["close"].astype(float) > 0)]
    if frame.empty:
        return {}
    last = frame.sort_values("valid_date").groupby("security_id").tail(1)
    return {str(s): float(p) for s, p in zip(last["security_id"], last["close"], strict=True)}


def current_book(ctx: DayContext) -> Book:
    """Broker positions and cash marked at the day's closes (a held security without one
    at its last known close, listed in ``stale``: :func:`held_marks`)."""
    ctx.broker.connect()
    positions = {s: q for s, q in ctx.broker.positions(ctx.portfolio_id).items() if q}
    cash = ctx.broker.cash(ctx.portfolio_id)
    if cash is None:
        cash = ctx.config.initial_capital
    # The series' values as Python floats (one tolist each, not a numpy scalar per cell).
    last = _as_dict(ctx.snapshot.last_close())
    prices = {str(s): p for s, p in last.items() if math.isfinite(p) and p > 0}
    marks, stale = held_marks(ctx, list(positions))
    prices.update(marks)
    nav = float(cash) + sum(q * prices[s] for s, q in positions.items())
    adv = _as_dict(ctx.snapshot.adv_shares())
    sectors = ctx.snapshot.sectors
    return Book(
        positions=positions,
        cash=float(cash),
        prices=prices,
        nav=nav,
        adv_shares={str(s): v for s, v in adv.items() if math.isfinite(v)},
        sectors={
            str(s): str(v) for s, v in zip(sectors.index.tolist(), sectors.tolist(), strict=True)
        },
        stale=tuple(stale),
    )


#: This process's last optimize, as (portfolio, session): the optimizer keeps its compiled
#: problems and warm-starts the next solve from the last one's solver state, which changes
#: the answer in its last bits, so a replay re-solves the same chain (pipelines.replay).
_LAST_SOLVE: dict[str, tuple[str, str]] = {}


def _warm_after(ctx: DayContext) -> tuple[str, str] | None:
    """The (portfolio, session) whose solve this one's warm start follows; None when the
    optimizer cache is empty (a fresh process, or a backtest segment's first session)."""
    from pipelines.portfolio import optimizer

    previous = _LAST_SOLVE.get("last") if optimizer._CACHE else None
    _LAST_SOLVE["last"] = (ctx.portfolio_id, ctx.day.isoformat())
    return previous


def optimize(ctx: DayContext) -> dict[str, Any]:
    """Stage 4: targets for the next session (state ``book`` and ``targets``), through the
    one rebalance (:func:`pipelines.portfolio.rebalance.rebalance`); nothing in a skipped
    session."""
    if (skipped := _skipped(ctx)) is not None:
        return skipped
    from pipelines.daily.config import session_settings
    from pipelines.portfolio.alpha import expected_returns
    from pipelines.portfolio.rebalance import RebalanceInputs, rebalance
    from pipelines.risk.consistency import load_policy_with_limits

    # What a replay needs to decide again exactly: the settings in force (the files are
    # not versioned) and the solve this one's warm start follows.
    ctx.state.put(
        "session_config", {**session_settings(ctx.config), "warm_after": _warm_after(ctx)}
    )
    model: RiskModel = ctx.state.get("risk_model")
    scores: pd.DataFrame = ctx.state.get("scores")
    book = current_book(ctx)
    ids = list(model.security_ids)
    volatility = ctx.snapshot.volatility()
    score = scores.set_index("security_id")["score"]
    targets = rebalance(
        RebalanceInputs(
            day=ctx.day,
            portfolio_id=ctx.portfolio_id,
            # The optimizer sees the pre-trade limits the orders will be checked against.
            policy=load_policy_with_limits(ctx.policy(), ctx.limits())[0],
            risk_model=model,
            alpha=expected_returns(score, volatility, ctx.config.alpha_ic, universe=ids),
            prices=pd.Series(book.prices, dtype=float),
            current_shares=pd.Series(book.positions, dtype=float),
            nav=book.nav,
            adv_shares=pd.Series(book.adv_shares, dtype=float),
            volatility=volatility,
            min_trade_notional=ctx.config.min_trade_notional,
            missing_alpha="zero",
            outside_holdings="liquidate",
        )
    )
    result = targets.optimization
    if ctx.config.record_portfolio_tables:
        from pipelines.portfolio.stage import store_targets

        store_targets(
            ctx.store,
            targets,
            known_at=decision_cutoff(ctx.day),
            policy=ctx.config.policy,
            min_trade_notional=ctx.config.min_trade_notional,
        )
    ctx.state.put("book", book)
    ctx.state.put("targets", targets)
    summary = targets.summary()
    return {
        "status": result.status,
        "solver": result.solver,
        "solve_time": round(result.solve_time, 3),
        "relaxations": summary["relaxations"],
        "trades": int((targets.positions["trade_shares"] != 0).sum()),
        "nav": round(book.nav, 2),
    }


def pretrade(ctx: DayContext) -> dict[str, Any]:
    """Stage 5: the orders the targets imply and their pre-trade verdicts, without sending
    (state ``pretrade``; the PM sees it in the approval request and the report).
    ``execute`` re-derives the same orders deterministically and records them. Nothing in
    a skipped session."""
    if (skipped := _skipped(ctx)) is not None:
        return skipped
    from pipelines.execution.orders import generate_orders, run_pretrade
    from pipelines.risk.pretrade import BookState

    targets: TargetPortfolio = ctx.state.get("targets")
    book: Book = ctx.state.get("book")
    limits = ctx.limits()
    proposed = generate_orders(
        targets,
        book.positions,
        ctx.portfolio_id,
        ctx.trade_date,
        adv=book.adv_shares,
        sectors=book.sectors,
        prices=book.prices,
    )
    state = BookState(
        nav=book.nav, positions=book.positions, prices=book.prices, sectors=book.sectors
    )
    verdict = run_pretrade(proposed, limits, state, now=ctx.now())
    # The failed checks' orders and rules, from the verdict's checks (what the audit
    # frame's failed rows held, without building the frame): the breaches by rule in
    # the rules' order, as the groupby's size() gave them.
    rejected: set[str] = set()
    failures: dict[str, int] = {}
    for order, checks in zip(verdict.orders, verdict.checks, strict=True):
        for rule, passed, _, _, _ in checks:
            if not passed:
                rejected.add(str(order.client_order_id))
                failures[rule] = failures.get(rule, 0) + 1
    preview = {
        "trade_date": ctx.trade_date.isoformat(),
        "orders": len(proposed),
        "rejected": len(rejected),
        "notional": round(sum(o.quantity * (o.decision_price or 0.0) for o in proposed), 2),
        "breaches": dict(sorted(failures.items())),
    }
    ctx.state.put("pretrade", preview)
    return preview


def approve(ctx: DayContext, decision: str | None = None, *, actor: str = "policy") -> str:
    """Stage 6: record the PM's decision (``approved``/``rejected``) in the audit trail.

    ``decision`` None applies the policy: ``auto_approve`` approves; otherwise nothing
    was answered in time and ``approval.on_timeout`` applies (default: rejected — no
    orders). The decision is the state ``approval`` that ``execute`` obeys.
    """
    from pipelines.execution.records import write_audit

    policy = ctx.config.approval
    if decision is None:
        if policy.auto_approve:
            decision, actor = APPROVED, "auto-approval policy"
        else:
            decision = APPROVED if policy.on_timeout == "approve" else REJECTED
            actor = f"timeout after {policy.timeout_minutes} min (default: {policy.on_timeout})"
    if decision not in (APPROVED, REJECTED):
        raise ConfigurationError(
            f"approval decision must be {APPROVED!r} or {REJECTED!r}: {decision!r}"
        )
    record = {"decision": decision, "actor": actor, "trade_date": ctx.trade_date.isoformat()}
    write_audit(
        ctx.store,
        ctx.portfolio_id,
        ctx.trade_date,
        "approval",
        [{"event": f"pm_{decision}", "detail": record}],
        known_at=ctx.now(),
    )
    ctx.state.put("approval", record)
    return decision


def execute(ctx: DayContext) -> dict[str, Any]:
    """Stage 7: the approved orders to the broker for the next session.

    A rejected (or missing) approval sends nothing; the targets stay on record. A skipped
    session has no targets: nothing is sent, whatever was approved.
    """
    if ctx.skip_reason is not None:
        result = {"sent": 0, "reason": ctx.skip_reason}
        ctx.state.put("execution", result)
        return result
    from pipelines.execution import execute_day

    approval = ctx.state.get("approval") if ctx.state.has("approval") else None
    if approval is None or approval["decision"] != APPROVED:
        result = {"sent": 0, "reason": "not approved", "approval": approval}
        ctx.state.put("execution", result)
        return result
    targets: TargetPortfolio = ctx.state.get("targets")
    book: Book = ctx.state.get("book")
    clock = ctx.now
    if ctx.clock is None:
        # The session's cutoff, the same instant at every call: computed once (the send
        # loop stamps every order's event).
        cutoff = ctx.now()
        clock = lambda: cutoff  # noqa: E731
    report = execute_day(
        ctx.store,
        ctx.portfolio_id,
        ctx.trade_date,
        targets,
        ctx.broker,
        ctx.limits(),
        nav=book.nav,
        current_positions=book.positions,
        adv=book.adv_shares,
        sectors=book.sectors,
        prices=book.prices,
        clock=clock,
    )
    summary = report.summary()
    ctx.state.put("execution", summary)
    return summary


def _row(frame: pd.DataFrame, when: pd.Timestamp) -> pd.Series:
    """Row ``when`` of a wide frame as a float Series (empty when absent)."""
    if when not in frame.index:
        return pd.Series(dtype=float)
    return pd.Series(frame.loc[when].to_numpy(dtype=float), index=frame.columns.astype(str))


def _previous_row(frame: pd.DataFrame, when: pd.Timestamp) -> dict[str, float]:
    """``_as_dict(_row(frame.shift(1), when))``: the row before ``when`` (all NaN when
    ``when`` is the first), by column name; empty when ``when`` is absent."""
    if when not in frame.index:
        return {}
    at = frame.index.get_loc(when)
    if not isinstance(at, int):  # a repeated date: as the shifted frame answers
        return _as_dict(_row(frame.shift(1), when))
    names = frame.columns.astype(str).tolist()
    if at == 0:
        return dict.fromkeys(names, math.nan)
    values = frame.iloc[at - 1].to_numpy(dtype=float).tolist()
    return dict(zip(names, values, strict=True))


def _rank_ic(scores: pd.DataFrame, returns: dict[str, float]) -> float:
    """The rank correlation of ``scores``' scores with ``returns`` over the securities
    with both (NaN when fewer than 5): the pandas inner join of the two series (in the
    scores' order), its rows without a NaN, ranked and correlated by pandas."""
    ids = scores["security_id"].tolist()
    if len(set(ids)) != len(ids):  # the join of a repeated label: as pandas does it
        s = scores.set_index("security_id")["score"].astype(float)
        ret = pd.Series(returns, dtype=float)
        both = pd.concat([s, ret], axis=1, join="inner").dropna()
        if len(both) < 5:
            return math.nan
        return float(both.iloc[:, 0].rank().corr(both.iloc[:, 1].rank()))
    values = scores["score"].to_numpy(dtype=float)
    take = [i for i, sid in enumerate(ids) if sid in returns]
    x = values[take]
    y = np.array([returns[ids[i]] for i in take], dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    if int(keep.sum()) < 5:
        return math.nan
    return float(pd.Series(x[keep]).rank().corr(pd.Series(y[keep]).rank()))


def _day_rows(ctx: DayContext, table: str, day: dt.date) -> pa.Table:
    """The portfolio's rows of ``table`` for ``day`` as known now: the store's answer
    that :func:`~pipelines.execution.records.read_day` converts to pandas."""
    mine = pc.field("portfolio_id") == pa.scalar(ctx.portfolio_id, pa.string())
    return ctx.store.as_of(table, known_at=LATEST, valid_at=day, filter=mine)


def _floats(table: pa.Table, name: str) -> np.ndarray:
    """Float column ``name`` as numpy (a null as NaN, as in read_day's frame)."""
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=float)


def _finite_fsum(values: np.ndarray) -> float:
    """The exact sum of the finite values."""
    return math.fsum(values[np.isfinite(values)].tolist())


#: Python types a ``daily_book`` value may have for :func:`_book_table` to convert it.
_BOOK_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str, type(None)),
    "double": (float, int, type(None)),
    "int64": (int,),
}


def _book_table(row: dict[str, Any]) -> pa.Table | None:
    """``row`` as the one-row Arrow table the lake stores for ``pd.DataFrame([row])``
    (its types; a NaN float or a None as null), or None for a value of another type."""
    from pipelines.lake import get_table

    arrays = []
    names = []
    for f in get_table("daily_book").input_fields:
        if f.name in ("valid_date", "known_at"):
            continue
        if f.name not in row:
            return None
        value = row[f.name]
        kinds = _BOOK_TYPES.get(str(f.type))
        if kinds is None or type(value) not in kinds:
            return None
        arrays.append(pa.array([value], f.type, from_pandas=True))
        names.append(f.name)
    return pa.Table.from_arrays(arrays, names=names)


def reconcile(ctx: DayContext) -> dict[str, Any]:
    """Stage 8: the day's fills, positions and cash vs the broker; the book into ``daily_book``."""
    from pipelines.execution import reconcile_day
    from pipelines.execution.reconcile import previous_positions

    # A task builds a fresh broker object: connect before the first question (a new
    # portfolio's opening book asks for its cash).
    ctx.broker.connect()
    prev = _previous_book(ctx)
    # Only a portfolio without a book yet may need opening (its positions are read again,
    # with the rest of the book, by reconcile_day: rec.previous).
    if prev is None and not previous_positions(ctx.store, ctx.portfolio_id, ctx.day):
        _open_book(ctx)
    rec = reconcile_day(
        ctx.store,
        ctx.broker,
        ctx.portfolio_id,
        ctx.day,
        prices=_session_prices(ctx),
        clock=ctx.now,
    )
    prev_positions = rec.previous
    snap = ctx.snapshot
    today = pd.Timestamp(ctx.day)
    from pipelines.execution.records import short_hash

    positions = {s: q for s, q in ctx.broker.positions(ctx.portfolio_id).items() if q}
    cash = ctx.broker.cash(ctx.portfolio_id)
    cash = ctx.config.initial_capital if cash is None else float(cash)
    marks, stale = held_marks(ctx, list(positions))
    values = {s: q * marks[s] for s, q in positions.items()}
    nav = cash + sum(values.values())
    prev_nav = ctx.config.initial_capital
    if prev is not None:  # a null NaV read as NaN, as through pandas
        prev_nav = math.nan if prev["nav"] is None else float(prev["nav"])
    ret = _as_dict(_row(snap.returns, today))
    prev_close = _previous_row(snap.close, today)
    # Yesterday's holdings at yesterday's closes, by security (none without a close).
    held_value = sorted(
        (s, v)
        for s, v in ((s, q * float(prev_close.get(s, math.nan))) for s, q in prev_positions.items())
        if not math.isnan(v)
    )
    contributions = [v * ret.get(s, math.nan) for s, v in held_value]
    holding_pnl = math.fsum(x for x in contributions if math.isfinite(x))
    pnl_factor = _factor_pnl(ctx, held_value)
    # The day's TCA, fills and the next session's orders as the store answers them (a few
    # columns of each: no frames). fsum: exact, so the totals do not depend on the order
    # the lake returns rows in.
    tca = _day_rows(ctx, "tca", ctx.day)
    # Cost of trading = impact against the arrival price + fees; the move from the decision
    # price to the arrival price is the market's (delay), reported apart.
    impact = _floats(tca, "impact_cost" if "impact_cost" in tca.column_names else "execution_cost")
    cost = _finite_fsum(np.concatenate([impact, _floats(tca, "commission")]))
    delay = _floats(tca, "delay_cost") if "delay_cost" in tca.column_names else np.array([])
    cost_delay = _finite_fsum(delay)
    fills = _day_rows(ctx, "fills", ctx.day)
    traded = math.fsum((_floats(fills, "quantity") * _floats(fills, "price")).tolist())
    prev_scores = _previous_state(ctx, "scores")
    ic = _rank_ic(prev_scores, ret) if prev_scores is not None else math.nan
    pnl = nav - prev_nav
    gross = sum(abs(v) for v in values.values()) / nav if nav else math.nan
    net = sum(values.values()) / nav if nav else math.nan
    orders = _day_rows(ctx, "orders", ctx.trade_date)
    n_rejected = 0
    if orders.num_rows:
        n_rejected = int(pc.sum(pc.equal(orders.column("status"), "rejected")).as_py() or 0)
    approval = ctx.state.get("approval") if ctx.state.has("approval") else None
    targets = ctx.state.get("targets") if ctx.state.has("targets") else None
    scores = ctx.state.get("scores") if ctx.state.has("scores") else None
    row = {
        "portfolio_id": ctx.portfolio_id,
        "nav": nav,
        "cash": cash,
        "gross": gross,
        "net": net,
        "n_positions": len(positions),
        "pnl": pnl,
        "pnl_factor": pnl_factor,
        "pnl_specific": holding_pnl - pnl_factor if np.isfinite(pnl_factor) else math.nan,
        "pnl_trading": pnl - holding_pnl,
        "cost": cost,
        "cost_delay": cost_delay,
        "traded_notional": traded,
        "ic": ic,
        "optimizer_status": targets.optimization.status if targets is not None else None,
        "approval": approval["decision"] if approval else None,
        "orders": orders.num_rows,
        "orders_rejected": n_rejected,
        "score_source": ",".join(sorted(scores["model_id"].astype(str).unique()))
        if scores is not None
        else None,
        "stale_marks": ",".join(stale) if stale else None,
    }
    # The row straight to Arrow (the table pd.DataFrame([row]) converts to), else the frame.
    book = _book_table(row)
    content = json.dumps(row, sort_keys=True, default=str)
    ctx.store.write(
        "daily_book",
        book if book is not None else pd.DataFrame([row]),
        known_at=ctx.now(),
        valid_date=ctx.day,
        batch_id=f"daily_book:{ctx.portfolio_id}:{ctx.day}:{short_hash(content, n=24)}",
    )
    ctx.state.put("daily_book", row)
    return {
        "nav": round(nav, 2),
        "pnl": round(pnl, 2),
        "breaks": rec.n_breaks,
        "positions": len(positions),
        "foreign_fills": len(rec.foreign_fills),
        "stale_marks": stale,
        "book": row,
    }


def _open_book(ctx: DayContext) -> None:
    """A new portfolio: record its starting cash (the paper account's) as of the previous
    session, so our book and the broker's agree from the first reconciliation."""
    from pipelines.execution.reconcile import previous_cash, seed_positions

    if previous_cash(ctx.store, ctx.portfolio_id, ctx.day) != 0.0:
        return
    cash = ctx.broker.cash(ctx.portfolio_id)
    seed_positions(
        ctx.store,
        ctx.portfolio_id,
        trading_calendar().previous_session(ctx.day),
        {},
        cash=ctx.config.initial_capital if cash is None else float(cash),
        known_at=ctx.now(),
        reason="new portfolio: starting capital",
    )


def _previous_book(ctx: DayContext) -> dict[str, Any] | None:
    """The latest ``daily_book`` row before the day, as known now."""
    import pyarrow.compute as pc

    table = ctx.store.as_of(
        "daily_book",
        known_at=LATEST,
        valid_at=(ctx.day - dt.timedelta(days=30), ctx.day - dt.timedelta(days=1)),
    )
    table = table.filter(pc.equal(table.column("portfolio_id"), ctx.portfolio_id))
    if not table.num_rows:
        return None
    # One row per portfolio and date (the table's key): the newest date's is the latest.
    newest = pc.index(table.column("valid_date"), pc.max(table.column("valid_date"))).as_py()
    row: dict[str, Any] = table.slice(newest, 1).to_pylist()[0]
    return row


def _previous_state(ctx: DayContext, name: str) -> Any:
    """The previous session's stored ``name`` (None when absent), from one read of that
    session's state for every name asked (:attr:`DayContext.previous_state`)."""
    return ctx.previous_state.find(name)


def _session_prices(ctx: DayContext) -> PriceSource:
    """The session's bars as known at its cutoff: the broker's own price source when it
    answers exactly that (the same store, knowledge time and lookback: it read the
    session's bars already to fill the day's orders, and a backtest's remembers them),
    else a lake source."""
    own = LakePriceSource(ctx.store, known_at=decision_cutoff(ctx.day))
    broker_prices = getattr(ctx.broker, "prices", None)
    lake_source = getattr(broker_prices, "source", broker_prices)
    if (
        broker_prices is not None
        and isinstance(lake_source, LakePriceSource)
        and lake_source.lake is own.lake
        and lake_source.known_at == own.known_at
        and lake_source.lookback == own.lookback
        and getattr(broker_prices, "known_at", None) == own.known_at
        and callable(getattr(broker_prices, "session_all", None))
    ):
        return broker_prices  # type: ignore[no-any-return]
    return own


def _factor_pnl(ctx: DayContext, held_value: list[tuple[str, float]]) -> float:
    """Σ_k (Σ_i v_i B_ik) f_k: yesterday's holdings' factor exposures (yesterday's model)
    times today's factor returns (today's model); NaN when either is unavailable.
    ``held_value``: (security, value) of yesterday's holdings, by security."""
    if not held_value:
        return 0.0
    prev_model: RiskModel | None = _previous_state(ctx, "risk_model")
    model: RiskModel | None = ctx.state.get("risk_model") if ctx.state.has("risk_model") else None
    if prev_model is None or model is None or model.factor_returns is None:
        return math.nan
    today = pd.Timestamp(ctx.day)
    if today not in model.factor_returns.index:
        return math.nan
    f = model.factor_returns.loc[today]
    # a dict, not the model's sequence: membership in a list made this quadratic in N
    index = {s: i for i, s in enumerate(prev_model.security_ids)}
    held = [(index[s], v) for s, v in held_value if s in index]
    B = prev_model.B[[i for i, _ in held]]
    exposure = pd.Series(
        np.array([v for _, v in held], dtype=float) @ B, index=prev_model.factor_names
    )
    # As pandas reindexes it: the vector may be a strided view of the model's frame, and
    # np.dot sums a strided vector in another order than a contiguous one (other bits).
    f_vec = f.reindex(exposure.index).fillna(0.0).to_numpy(dtype=float)
    return float(np.dot(exposure.to_numpy(dtype=float), f_vec))


def report_subject(config: DailyConfig) -> ReportSubject:
    """The PM report's subject for ``config``'s portfolio."""
    from pipelines.report.pm import ReportSubject

    return ReportSubject(config.portfolio_id, config.policy, config.limits)


def report(ctx: DayContext) -> str:
    """Stage 9: the PM report for the day (under the lake root); returns where it is."""
    from pipelines.report import write_pm_report

    return write_pm_report(ctx.lake, ctx.day, report_subject(ctx.config))
