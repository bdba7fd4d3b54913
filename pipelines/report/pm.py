"""The PM's end-of-day report: one self-contained HTML file per portfolio and session.

Inputs are read from the lake only: the day's stage state (``stage_state``: targets, risk
model, scores, book, pre-trade preview, approval), ``daily_book`` history, data-quality
tables and the freshness of every input table. A missing input never fails the report:
its section says what is missing. The file is written under the lake root
(``<root>/reports/pm-report-<portfolio>-<day>.html``, local or S3) or where ``out`` says.

Layout: :func:`report_sections` returns the sections in order, each a
:class:`~pipelines.report.render.Section` (title, Jinja2 template under ``templates/sections``,
context, glossary) from one function; :func:`~pipelines.report.render.render_page` lays
them out. Numbers are formatted here (weights in % and bp), never in a template.

Trade reasons. For a trade ``Δw_i`` (fraction of NAV) the report shows three currency
amounts and names the largest as the reason:

* alpha  ``= α_i · Δw_i · V`` — expected one-day return captured;
* risk   ``= −λ · ((Σ w)_i − (Σ w0)_i) · Δw_i · V`` ≈ the change in the risk penalty
  attributable to the trade (``Σ = BFBᵀ + D``, ``λ`` the policy's risk aversion);
* cost   ``= −(half_spread + c·σ_i·√(|Δw_i|V / ADV_i)) · |Δw_i| · V`` — expected cost.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import REPORTS_URL_ENV
from pipelines.lake import Lake
from pipelines.lake.interface import Store
from pipelines.lake.stage_state import StageState
from pipelines.report import html as h
from pipelines.report import render as r
from pipelines.report.render import Section
from pipelines.timeline import LATEST, trading_calendar

#: Input tables whose freshness the report shows (table, what it feeds).
INPUT_TABLES: tuple[tuple[str, str], ...] = (
    ("prices", "returns, risk, marks"),
    ("corporate_actions", "total returns"),
    ("security_master", "universe, sectors"),
    ("fundamentals", "size, value"),
    ("sentiment", "alternative data"),
    ("alpha_scores", "alpha"),
)


@dataclass(frozen=True)
class ReportSubject:
    """Whose report it is: the portfolio, and the policy and limits it runs under (names
    or YAML paths, as the daily config gives them)."""

    portfolio_id: str
    policy: str = "default"
    limits: str = "default"


def _artifact(art: StageState, name: str) -> Any:
    return art.find(name)


#: When the report of a session is read "as of": the next session's open, in exchange time.
REPORT_AS_OF = dt.time(9, 30)


def report_as_of(store: Store, day: dt.date) -> dt.datetime:
    """What the report of ``day`` may know: everything recorded by the next session's open
    (the evening's pipeline included) or, when the session itself was ingested later (a
    late folder, history loaded today), by the end of its last ingest run — nothing learnt
    after. A report rendered again months afterwards shows what the PM saw then, not
    later restatements or corrections."""
    cal = trading_calendar()
    known = cal.at(cal.next_session(day), REPORT_AS_OF)
    try:
        runs = store.as_of("ingest_runs", known_at=LATEST, valid_at=day, columns=["known_at"])
    except Exception:  # no ingest log (a lake loaded by hand): the open is the answer
        return known
    if runs.num_rows:
        last = pd.to_datetime(runs.column("known_at").to_pandas(), utc=True).max()
        known = max(known, last.to_pydatetime())
    return known


def _read(
    lake: Store, table: str, start: dt.date, end: dt.date, known: dt.datetime
) -> pd.DataFrame:
    try:
        return lake.as_of(table, known_at=known, valid_at=(start, end)).to_pandas()
    except Exception:  # a report shows what it can; the section says the table is missing
        return pd.DataFrame()


def stale_marks(book: Any) -> list[str]:
    """The held securities a ``daily_book`` row marked at an earlier close."""
    if not book:
        return []
    value = book.get("stale_marks")
    if value is None or (isinstance(value, float) and np.isnan(value)) or not str(value):
        return []
    return [s for s in str(value).split(",") if s]


#: Widening (in the constraint's own units: fractions of NAV, σ units) below which a
#: relaxation is solver noise, not a decision: the optimizer keeps anything above 1e-7.
RELAXATION_TOLERANCE = 1e-6

_STATUS_CLASS = {"optimal": "ok", "relaxed": "warn"}


def _header(day: dt.date, config: ReportSubject, art: StageState) -> Section:
    book = _artifact(art, "daily_book") or {}
    approval = _artifact(art, "approval") or {}
    targets = _artifact(art, "targets")
    status = targets.optimization.status if targets is not None else "not run"
    decision = approval.get("decision", "pending")
    stale = stale_marks(book)
    cards = [
        ("NAV", r.money(book.get("nav")), ""),
        ("day P&L", r.money(book.get("pnl")), ""),
        ("gross", r.pct(book.get("gross")), ""),
        ("net", r.pct(book.get("net")), ""),
        ("positions", h.fmt(book.get("n_positions")), ""),
        ("optimizer", status, _STATUS_CLASS.get(status, "bad")),
        (
            "PM approval",
            f"{decision} ({approval.get('actor', '–')})",
            "ok" if decision == "approved" else "bad",
        ),
        ("orders", h.fmt(book.get("orders")), ""),
        ("stale marks", ", ".join(stale) if stale else "none", "warn" if stale else "ok"),
    ]
    return Section(
        "Summary",
        "summary.html.j2",
        {"cards": cards},
        (
            ("NAV", "net asset value at the session's close, in the book's currency."),
            ("gross / net", "Σ|w| and Σw of the book, % of NAV."),
            ("optimizer", "optimal, relaxed (soft limits widened), infeasible or error."),
            ("stale marks", "held names without a close today, marked at their last close."),
        ),
    )


def _terms_table(s: dict[str, Any]) -> r.Table:
    """The objective and every term that makes it up, signed so that they add up."""
    if "objective" not in s:
        return r.table(pd.DataFrame())
    rows = [
        ("alpha", "+", s.get("alpha_term")),
        ("risk (λ × variance)", "−", s.get("risk_term")),
        ("transaction cost", "−", s.get("cost_term")),
        ("holding cost", "−", s.get("holding_term")),
        ("relaxation penalty", "−", s.get("penalty_term")),
    ]
    frame = pd.DataFrame(
        [
            {"term": name, "value": float(v or 0.0), "contribution": float(v or 0.0) * sign}
            for name, op, v in rows
            for sign in [1.0 if op == "+" else -1.0]
        ]
        + [{"term": "objective", "value": None, "contribution": float(s["objective"])}]
    )
    six = lambda v: h.fmt(v, 6)  # noqa: E731 - a formatter, named where it is used
    return r.table(frame, left=["term"], formats={"value": six, "contribution": six})


def _optimizer(art: StageState, config: ReportSubject) -> Section:
    glossary = (
        ("objective", "alpha − risk − transaction cost − holding cost − relaxation penalty."),
        (
            "relaxation penalty",
            "ρ × widening of the relaxed soft constraints; large by design (ρ ≫ alpha), "
            "so the optimizer widens as little as it can.",
        ),
        ("relaxed", "a soft constraint group widened to make the problem feasible."),
        (
            "infeasible",
            "no portfolio meets the hard constraints: the current book is held.",
        ),
        ("tolerance", f"widenings ≤ {h.fmt(RELAXATION_TOLERANCE)} are solver noise."),
    )
    title = "Optimizer status and relaxed constraints"
    targets = _artifact(art, "targets")
    if targets is None:
        return Section(title, "optimizer.html.j2", {"missing": True}, glossary)
    s = targets.summary()
    opt = targets.optimization
    relax = pd.DataFrame(s["relaxations"], columns=["group", "constraint", "limit", "amount"])
    above = relax[relax["amount"].abs() > RELAXATION_TOLERANCE]
    solves = opt.solves_frame(targets.portfolio_id)
    context: dict[str, Any] = {
        "missing": False,
        "status": s["status"],
        "status_class": _STATUS_CLASS.get(str(s["status"]), "bad"),
        "solver": s["solver"],
        "solve_time": h.fmt(float(s["solve_time"]), 3),
        "n_solves": s["n_solves"],
        "message": s["message"],
        "rounding": (
            f"Whole-share rounding moved {s['rounding_lots_moved']} lot(s) and restored "
            f"{s['rounding_trades_restored']} small trade(s) to keep the policy's net band "
            "and gross cap"
            + ("." if s["rounding_within_policy"] else ": still outside the policy.")
        ),
        "terms": _terms_table(s),
        "tolerance": h.fmt(RELAXATION_TOLERANCE),
        "relaxations": r.table(
            above.rename(columns={"amount": "widened by"}),
            left=["group", "constraint"],
            formats={"limit": lambda v: h.fmt(v, 6), "widened by": lambda v: h.fmt(v, 6)},
        ),
        "noise": len(relax) - len(above),
        "solves": r.table(
            solves[["stage", "solver", "status", "solve_time", "objective", "relaxed_groups"]],
            left=["stage", "solver", "status", "relaxed_groups"],
            formats={"solve_time": lambda v: h.fmt(v, 3), "objective": lambda v: h.fmt(v, 6)},
        ),
        "conflicts": [],
        "diagnosis": r.table(pd.DataFrame()),
        "diagnosis_note": "",
    }
    if s["status"] == "infeasible":
        from pipelines.report.diagnosis import diagnose_infeasible

        found = diagnose_infeasible(art, config.policy, config.limits)
        context["conflicts"] = found.conflicts
        context["diagnosis"] = r.table(found.frame, left=["group", "loosened to", "result"])
        context["diagnosis_note"] = found.note
    return Section(title, "optimizer.html.j2", context, glossary)


def _positions(art: StageState) -> Section:
    title = "Target vs current portfolio"
    glossary = (
        ("current % / target %", "weight of the name, % of NAV, before and after the trades."),
        ("change (bp)", "target − current, in basis points of NAV (1 bp = 0.01%)."),
        ("shares", "whole shares held now and targeted (lot-rounded)."),
    )
    targets = _artifact(art, "targets")
    if targets is None:
        return Section(title, "positions.html.j2", {"missing": True}, glossary)
    pos = targets.positions.copy()
    show = pos[(pos["rounded_weight"] != 0) | (pos["current_weight"] != 0)]
    top = show.reindex(show["rounded_weight"].abs().sort_values(ascending=False).index).head(25)
    fig, ax = h.figure(7.0, 3.4)
    x = np.arange(len(top))
    ax.bar(x - 0.2, 100 * top["current_weight"], 0.4, label="current", color="#9aa7bd")
    ax.bar(x + 0.2, 100 * top["rounded_weight"], 0.4, label="target", color="#2f5b9a")
    ax.set_xticks(x, top["security_id"], rotation=75, fontsize=7)
    ax.set_ylabel("% of NAV")
    ax.set_title("Largest target positions: current vs target")
    ax.axhline(0, color="#333", lw=0.6)
    ax.legend(fontsize=8)
    long_ = float(pos.loc[pos["rounded_weight"] > 0, "rounded_weight"].sum())
    short = float(pos.loc[pos["rounded_weight"] < 0, "rounded_weight"].sum())
    frame = pd.DataFrame(
        {
            "security_id": top["security_id"],
            "current %": top["current_weight"].astype(float),
            "target %": top["rounded_weight"].astype(float),
            "change (bp)": (top["rounded_weight"] - top["current_weight"]).astype(float),
            "current shares": top["current_shares"].astype(int),
            "target shares": top["target_shares"].astype(int),
            "price": top["price"].astype(float),
        }
    )
    context = {
        "missing": False,
        "names": int((pos["target_shares"] != 0).sum()),
        "long": r.pct(long_),
        "short": r.pct(short),
        "traded": r.money(float(pos["trade_notional"].abs().sum())),
        "chart": r.chart(fig),
        "table": r.table(
            frame,
            left=["security_id"],
            max_rows=25,
            formats={
                "current %": lambda v: r.pct(v, 3),
                "target %": lambda v: r.pct(v, 3),
                "change (bp)": lambda v: r.bps(v, 1),
                "price": lambda v: f"{v:,.2f}",
            },
        ),
    }
    return Section(title, "positions.html.j2", context, glossary)


def trade_reasons(art: StageState, config: ReportSubject) -> pd.DataFrame:
    """Per trade: current and target weight (fractions of NAV), Δw in bp, alpha / risk / cost amounts (currency) and the dominant reason."""
    from pipelines.portfolio.policy import load_policy

    targets = _artifact(art, "targets")
    model = _artifact(art, "risk_model")
    book = _artifact(art, "book")
    if targets is None or model is None:
        return pd.DataFrame()
    pos = targets.positions.set_index("security_id")
    trades = pos[pos["trade_shares"] != 0]
    if trades.empty:
        return pd.DataFrame()
    policy = load_policy(config.policy)
    V = targets.portfolio_value
    sub = model.subset(list(pos.index))
    w = pos["rounded_weight"].to_numpy(float)
    w0 = pos["current_weight"].to_numpy(float)
    sigma_w = sub.B @ (sub.F @ (sub.B.T @ w)) + sub.D * w
    sigma_w0 = sub.B @ (sub.F @ (sub.B.T @ w0)) + sub.D * w0
    marginal = pd.Series(sigma_w - sigma_w0, index=pos.index)
    dw = trades["rounded_weight"] - trades["current_weight"]
    vol = pd.Series(np.sqrt(np.maximum(sub.D + np.einsum("ij,jk,ik->i", sub.B, sub.F, sub.B), 0)))
    vol.index = pos.index
    adv = pd.Series(book.adv_shares if book is not None else {}, dtype=float)
    adv_dollars = (adv.reindex(trades.index) * trades["price"]).replace(0, np.nan)
    impact = (
        policy.impact_coefficient
        * vol.reindex(trades.index)
        * np.sqrt((dw.abs() * V) / adv_dollars)
    )
    out = pd.DataFrame(
        {
            "security_id": trades.index,
            "side": np.where(dw > 0, "buy", "sell"),
            "trade_shares": trades["trade_shares"].to_numpy(),
            "current %": trades["current_weight"].to_numpy(float),
            "target %": trades["rounded_weight"].to_numpy(float),
            "delta_bps": (1e4 * dw).round(2).to_numpy(),
            "alpha": (trades["alpha"] * dw * V).to_numpy(),
            "risk": (-policy.risk_aversion * marginal.reindex(trades.index) * dw * V).to_numpy(),
            "cost": (-(0.0005 + impact.fillna(0.0)) * dw.abs() * V).to_numpy(),
        }
    )
    parts = out[["alpha", "risk", "cost"]].abs()
    out["reason"] = parts.idxmax(axis=1).where(parts.max(axis=1) > 0, "rounding")
    return out.reindex(out["delta_bps"].abs().sort_values(ascending=False).index)


def execution_line(execution: dict[str, Any] | None) -> str:
    """What the execute stage did, in the PM's words: ``sent N · already at broker N ·
    blocked N`` (sent = sent by this run; already at broker = sent by an earlier run and not
    sent again; blocked = held back by the kill switch), then any rejection, or why nothing
    was sent."""
    if not execution:
        return "not run yet (the approved orders go to the broker after approval)"
    sent = int(execution.get("submitted", execution.get("sent", 0)) or 0)
    already = int(execution.get("already_at_broker", 0) or 0)
    blocked = int(execution.get("blocked", 0) or 0)
    line = f"sent {sent} · already at broker {already} · blocked {blocked}"
    extra = [
        f"{label} {int(execution.get(key) or 0)}"
        for key, label in (
            ("rejected_pretrade", "rejected by pre-trade checks"),
            ("rejected_broker", "rejected by the broker"),
            ("cancelled", "cancelled"),
        )
        if execution.get(key)
    ]
    if extra:
        line += " · " + " · ".join(extra)
    if execution.get("reason"):
        line += f" — nothing sent: {execution['reason']}"
    return line


def _trades(art: StageState, config: ReportSubject) -> Section:
    frame = trade_reasons(art, config)
    preview = _artifact(art, "pretrade") or {}
    breaches = preview.get("breaches") or {}
    context: dict[str, Any] = {
        "trade_date": preview.get("trade_date", "–"),
        "orders": preview.get("orders", 0),
        "rejected": preview.get("rejected", 0),
        "breaches": json.dumps(breaches) if breaches else "",
        "execution": execution_line(_artifact(art, "execution")),
        "reasons": "",
        "table": r.table(pd.DataFrame()),
    }
    if not frame.empty:
        counts = frame["reason"].value_counts().to_dict()
        context["reasons"] = ", ".join(f"{k} {v}" for k, v in counts.items())
        context["table"] = r.table(
            frame,
            left=["security_id", "side", "reason"],
            sortable=True,
            formats={
                "trade_shares": lambda v: f"{int(v):,}",
                "current %": lambda v: r.pct(v, 3),
                "target %": lambda v: r.pct(v, 3),
                "delta_bps": lambda v: f"{v:,.2f}",
                "alpha": r.money,
                "risk": r.money,
                "cost": r.money,
            },
        )
    glossary = (
        ("delta_bps", "change in the name's weight, basis points of NAV."),
        ("alpha", "expected return earned by the change: alpha × Δweight × NAV."),
        (
            "risk",
            "change in the risk penalty: −risk aversion × marginal variance × Δweight × NAV.",
        ),
        ("cost", "expected half-spread + market impact of the trade."),
        ("reason", "the largest of alpha, risk, cost in absolute value (rounding if all 0)."),
        ("sent", "orders sent to the broker by this run."),
        ("already at broker", "sent by an earlier run (a retry finds them); not sent again."),
        ("blocked", "held back by the kill switch."),
    )
    return Section("Trades and their reasons", "trades.html.j2", context, glossary)


def _exposures(art: StageState) -> Section:
    title = "Sector and factor exposures"
    glossary = (
        ("sector exposure", "net weight in the sector, % of NAV."),
        ("factor exposure", "Σ weight × the name's exposure, in cross-sectional σ units."),
    )
    targets = _artifact(art, "targets")
    model = _artifact(art, "risk_model")
    if targets is None or model is None or targets.risk is None:
        return Section(title, "exposures.html.j2", {"missing": True}, glossary)
    pos = targets.positions
    sub = model.subset(list(pos["security_id"]))
    current = sub.decompose(pos["current_weight"].to_numpy(float))
    frame = pd.DataFrame(
        {"current": current.factor_exposure, "target": targets.risk.factor_exposure}
    ).fillna(0.0)
    charts = []
    for name, part, scale in (
        ("Sector exposure (% NAV)", frame[frame.index.str.startswith("sector_")], 100.0),
        ("Factor exposure (σ units)", frame[~frame.index.str.startswith("sector_")], 1.0),
    ):
        fig, ax = h.figure(5.6, 3.2)
        y = np.arange(len(part))
        ax.barh(y - 0.2, scale * part["current"], 0.4, label="current", color="#9aa7bd")
        ax.barh(y + 0.2, scale * part["target"], 0.4, label="target", color="#2f5b9a")
        ax.set_yticks(y, [str(i).removeprefix("sector_") for i in part.index], fontsize=7)
        ax.axvline(0, color="#333", lw=0.6)
        ax.set_title(name)
        ax.legend(fontsize=7)
        charts.append((r.chart(fig), name))
    return Section(title, "exposures.html.j2", {"missing": False, "charts": charts}, glossary)


def _risk(art: StageState) -> Section:
    title = "Ex-ante risk"
    glossary = (
        ("ex-ante vol", "predicted annualised volatility of the target book (risk model)."),
        ("factor / specific share", "parts of the predicted variance from factors / names."),
        ("Euler decomposition", "each factor's contribution; contributions add up to 100%."),
    )
    targets = _artifact(art, "targets")
    if targets is None or targets.risk is None:
        return Section(title, "risk.html.j2", {"missing": True}, glossary)
    rk = targets.risk
    total = rk.total_var or math.nan
    contrib = rk.factor_contrib.sort_values(key=lambda s: s.abs(), ascending=False).head(12)
    fig, ax = h.figure(5.6, 3.2)
    labels = [str(i).removeprefix("sector_") for i in contrib.index] + ["specific"]
    values = [*(100 * contrib / total).tolist(), 100 * rk.specific_var / total]
    ax.barh(np.arange(len(values)), values, color="#2f5b9a")
    ax.set_yticks(np.arange(len(values)), labels, fontsize=7)
    ax.set_xlabel("% of ex-ante variance")
    ax.set_title("Risk decomposition (Euler)")
    cards = [
        ("ex-ante vol (ann.)", r.pct(rk.annualized_vol()), ""),
        ("factor share", r.pct(rk.factor_var / total), ""),
        ("specific share", r.pct(rk.specific_var / total), ""),
    ]
    return Section(
        title, "risk.html.j2", {"missing": False, "cards": cards, "chart": r.chart(fig)}, glossary
    )


def equal_weight_benchmark(store: Store, dates: list[dt.date], start_value: float) -> pd.Series:
    """The equal-weight universe as a NAV line over ``dates`` (starting at ``start_value``
    on the first): each session's mean total return over every security with a return that
    session, from the lake as known at the last date's decision cutoff (point in time: a
    name delisted since is in it while it traded, a name listed later from its listing)."""
    from pipelines.pit.snapshot import load_snapshot

    if len(dates) < 2:
        return pd.Series(dtype=float)
    sessions = len(trading_calendar().sessions(dates[0], dates[-1])) + 2
    snap = load_snapshot(store, dates[-1], lookback=sessions)
    daily = snap.returns.mean(axis=1, skipna=True).fillna(0.0)
    daily.index = [ts.date() for ts in pd.to_datetime(daily.index)]
    values = [start_value]
    for prev, cur in itertools.pairwise(dates):
        window = daily[(daily.index > prev) & (daily.index <= cur)]
        values.append(values[-1] * float(np.prod(1.0 + window.to_numpy(float))))
    return pd.Series(values, index=dates)


def _pnl(
    lake: Store, day: dt.date, config: ReportSubject, art: StageState, known: dt.datetime
) -> Section:
    title = "P&L attribution"
    glossary = (
        (
            "factor / specific",
            "P&L of the positions held from the previous close, split by the factor model.",
        ),
        ("trading", "the day's fills marked to the close, cost included."),
        ("cost", "impact of the fills against the arrival price + commission."),
        ("benchmark", "the equal-weight universe, compounded from the first NAV shown."),
    )
    hist = _read(lake, "daily_book", day - dt.timedelta(days=400), day, known)
    if not hist.empty:
        hist = hist[hist["portfolio_id"] == config.portfolio_id].sort_values("valid_date")
    book = _artifact(art, "daily_book")
    if book is None and not hist.empty and hist["valid_date"].iloc[-1] == day:
        book = hist.iloc[-1].to_dict()
    if book is None:
        return Section(title, "pnl.html.j2", {"missing": True}, glossary)
    parts = pd.DataFrame(
        [
            {"component": "factor", "P&L": book.get("pnl_factor")},
            {"component": "specific", "P&L": book.get("pnl_specific")},
            {"component": "trading (incl. cost)", "P&L": book.get("pnl_trading")},
            {"component": "  of which cost", "P&L": -float(book.get("cost") or 0.0)},
            {"component": "total", "P&L": book.get("pnl")},
        ]
    )
    context: dict[str, Any] = {
        "missing": False,
        "table": r.table(parts, left=["component"], formats={"P&L": r.money}),
        "stale": stale_marks(book),
        "chart": "",
        "benchmark_note": "",
    }
    if len(hist) > 1:
        dates = [pd.Timestamp(d).date() for d in hist["valid_date"]]
        nav = hist["nav"].astype(float).to_numpy()
        fig, ax = h.figure(6.4, 2.8)
        ax.plot(pd.to_datetime(dates), nav, color="#2f5b9a", label="NAV")
        try:
            bench = equal_weight_benchmark(lake, dates, float(nav[0]))
        except Exception as exc:  # the chart still shows the NAV; the note says why
            bench = pd.Series(dtype=float)
            context["benchmark_note"] = f"No benchmark line: {exc}"
        if not bench.empty:
            ax.plot(
                pd.to_datetime(list(bench.index)),
                bench.to_numpy(),
                color="#b26b00",
                ls="--",
                label="equal-weight universe",
            )
            excess = nav[-1] / nav[0] - bench.iloc[-1] / bench.iloc[0]
            context["benchmark_note"] = (
                f"Over the period shown: portfolio {r.pct(nav[-1] / nav[0] - 1)}, "
                f"equal-weight universe {r.pct(bench.iloc[-1] / bench.iloc[0] - 1)}, "
                f"difference {r.pct(excess)}."
            )
        ax.set_title("NAV vs equal-weight universe")
        ax.legend(fontsize=7)
        date_axis(ax, dates)
        # The NAV as written, not "+1e7" plus an offset.
        ax.ticklabel_format(axis="y", style="plain", useOffset=False)
        ax.yaxis.set_major_formatter(mticker_thousands())
        fig.autofmt_xdate()
        context["chart"] = r.chart(fig)
    return Section(title, "pnl.html.j2", context, glossary)


def date_axis(ax: Any, dates: list[dt.date]) -> None:
    """Session dates on the x axis: one tick per session when there are few (an automatic
    locator puts ticks at noon between them), at most eight otherwise, as YYYY-MM-DD."""
    import matplotlib.dates as mdates

    if len(dates) <= 8:
        ax.set_xticks(pd.to_datetime(dates))
    else:
        ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=8))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))


def mticker_thousands() -> Any:
    """A y-axis formatter writing 10,000,000 rather than 1e7."""
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: f"{v:,.0f}")


def _alpha(
    lake: Store, day: dt.date, config: ReportSubject, art: StageState, known: dt.datetime
) -> Section:

    title = "Alpha diagnostics"
    glossary = (
        ("score", "the model's cross-sectional score of a name for the next session."),
        ("rank IC", "Spearman correlation of the scores with the next day's returns."),
    )
    scores = _artifact(art, "scores")
    if scores is None:
        return Section(title, "alpha.html.j2", {"missing": True}, glossary)
    fig, ax = h.figure(4.8, 2.8)
    ax.hist(scores["score"].astype(float), bins=30, color="#2f5b9a")
    ax.set_title("Score distribution")
    charts = [(r.chart(fig), "score distribution")]
    hist = _read(lake, "daily_book", day - dt.timedelta(days=400), day, known)
    if not hist.empty:
        hist = hist[hist["portfolio_id"] == config.portfolio_id].sort_values("valid_date")
        ic = hist["ic"].astype(float).dropna()
        if len(ic) > 1:
            fig2, ax2 = h.figure(4.8, 2.8)
            ax2.plot(pd.to_datetime(hist.loc[ic.index, "valid_date"]), ic.cumsum(), color="#1a7f37")
            ax2.set_title(f"Cumulative daily rank IC (mean {ic.mean():.3f})")
            date_axis(ax2, [pd.Timestamp(d).date() for d in hist.loc[ic.index, "valid_date"]])
            fig2.autofmt_xdate()
            charts.append((r.chart(fig2), "cumulative rank IC"))
    diag = _read(lake, "research_diagnostics", day - dt.timedelta(days=40), day, known)
    diagnostics = None
    if not diag.empty and "kind" in diag:
        ic_rows = diag[diag["kind"] == "ic"].sort_values("valid_date").tail(12)
        diagnostics = r.table(
            ic_rows[["valid_date", "model_id", "name", "horizon", "value", "n"]],
            left=["model_id", "name"],
        )
    context = {
        "missing": False,
        "n_scored": len(scores),
        "models": ", ".join(sorted(scores["model_id"].astype(str).unique())),
        "charts": charts,
        "diagnostics": diagnostics,
    }
    return Section(title, "alpha.html.j2", context, glossary)


def _freshness(lake: Store, day: dt.date, known: dt.datetime) -> pd.DataFrame:
    rows: list[dict[str, object]] = []
    for table, role in INPUT_TABLES:
        frame = _read(lake, table, day - dt.timedelta(days=400), day, known)
        if frame.empty:
            rows.append({"table": table, "feeds": role, "latest valid": None, "status": "missing"})
            continue
        latest = max(frame["valid_date"])
        known = pd.to_datetime(frame["known_at"], utc=True).max()
        lag = (day - latest).days
        status = "fresh" if lag <= (120 if table == "fundamentals" else 5) else "stale"
        rows.append(
            {
                "table": table,
                "feeds": role,
                "latest valid": str(latest),
                "last known_at": known.isoformat(timespec="minutes"),
                "rows (window)": len(frame),
                "status": status,
            }
        )
    return pd.DataFrame(rows)


def _quality(lake: Store, day: dt.date, known: dt.datetime) -> Section:
    glossary = (
        ("fresh / stale", "latest date within 5 days (fundamentals: 120) of the session."),
        ("contract checks", "data-contract rules run on each feed's files; failed = broken."),
        ("quarantine", "a file held back from the lake until someone releases it."),
    )
    fresh = _freshness(lake, day, known)
    context: dict[str, Any] = {
        "freshness": r.table(
            fresh, left=["table", "feeds", "latest valid", "last known_at", "status"]
        ),
        "runs": None,
        "checks": None,
        "quarantine": None,
    }
    runs = _read(lake, "ingest_runs", day - dt.timedelta(days=7), day, known)
    if not runs.empty:
        runs = runs.sort_values(["valid_date", "feed"]).groupby("feed").tail(1)
        cols = [
            c for c in ("feed", "valid_date", "file_name", "status", "rows", "message") if c in runs
        ]
        context["runs"] = r.table(runs[cols], left=["feed", "file_name", "status", "message"])
    checks = _read(lake, "validation_results", day - dt.timedelta(days=3), day, known)
    if not checks.empty:
        grouped = (
            checks.groupby(["feed", "valid_date"])
            .agg(
                rules=("rule", "count"), failed=("success", lambda s: int((~s.astype(bool)).sum()))
            )
            .reset_index()
        )
        context["checks"] = r.table(grouped, left=["feed"])
    quarantine = _read(lake, "quarantine", day - dt.timedelta(days=60), day, known)
    if not quarantine.empty:
        open_ = quarantine[quarantine["status"] == "open"]
        if not open_.empty:
            context["quarantine"] = r.table(
                open_[["valid_date", "feed", "file_name", "rules", "message"]],
                left=["feed", "file_name", "rules", "message"],
            )
    return Section("Data quality and freshness", "quality.html.j2", context, glossary)


def report_sections(
    store: Store, day: dt.date, subject: ReportSubject, art: StageState, known: dt.datetime
) -> list[Section]:
    """The report's sections, in order: one function call each (add a section here)."""
    return [
        _header(day, subject, art),
        _optimizer(art, subject),
        _positions(art),
        _trades(art, subject),
        _exposures(art),
        _risk(art),
        _pnl(store, day, subject, art, known),
        _alpha(store, day, subject, art, known),
        _quality(store, day, known),
        *_rollout(store, day, subject, known),
    ]


def _rollout(
    store: Store, day: dt.date, subject: ReportSubject, known: dt.datetime
) -> list[Section]:
    """The "Rollout" section (:func:`rollout_section`), or none when nothing was ever
    rolled out for this portfolio."""
    rollout, steps = rollout_section(store, day, subject.portfolio_id, known)
    if rollout.empty:
        return []
    glossary = (
        (
            "paper → canary → full",
            "a candidate's stages: shadow book, a funded fraction, production.",
        ),
        ("gates", "live rank IC, tracking error vs paper, slippage vs the cost model, breaches."),
        ("rolled back", "a gate failed: the candidate left its stage automatically (audited)."),
    )
    context = {
        "candidates": r.table(
            rollout, left=["candidate", "kind", "ref", "stage", "verdict", "last step"]
        ),
        "steps": r.table(steps, left=["candidate_id", "event", "stage_after", "actor", "reason"]),
    }
    return [Section("Rollout", "rollout.html.j2", context, glossary)]


def rollout_section(
    store: Store, day: dt.date, portfolio_id: str, known: dt.datetime, last_events: int = 8
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The "Rollout" section's data, from ``rollout_events`` as known at ``known``:
    (one row per candidate shadowing ``portfolio_id``: stage, since, its last gate values
    and verdict; the latest ``last_events`` steps of those candidates). Both empty when
    nothing was ever rolled out."""
    events = _read(store, "rollout_events", dt.date(1970, 1, 1), day, known)
    if events.empty:
        return pd.DataFrame(), pd.DataFrame()
    events = events[events["portfolio_id"] == portfolio_id]
    events = events.sort_values(["candidate_id", "seq"])
    gate_cols = ["ic", "tracking_error", "slippage_bps", "pretrade_breaches", "verdict"]
    rows = []
    for cid, mine in events.groupby("candidate_id", sort=True):
        gates = mine[mine["event"] == "gates"]
        last_gates = gates.iloc[-1] if len(gates) else None
        rows.append(
            {
                "candidate": cid,
                "kind": mine["kind"].iloc[0],
                "ref": mine["ref"].iloc[0],
                "stage": mine["stage_after"].iloc[-1],
                "since": str(mine["valid_date"].iloc[-1]),
                **{c: (None if last_gates is None else last_gates[c]) for c in gate_cols},
                "last step": f"{mine['event'].iloc[-1]}: {mine['reason'].iloc[-1]}",
            }
        )
    recent = events.sort_values(["valid_date", "recorded_at", "seq"]).tail(last_events)
    steps = recent[["valid_date", "candidate_id", "event", "stage_after", "actor", "reason"]]
    return pd.DataFrame(rows), steps.iloc[::-1].reset_index(drop=True)


def render_pm_report(
    store: Store, day: dt.date, subject: ReportSubject, known_at: dt.datetime | None = None
) -> str:
    """The report's HTML (see module docstring), from what was known at ``known_at``
    (default :func:`report_as_of`)."""
    known = known_at or report_as_of(store, day)
    art = StageState(store, subject.portfolio_id, day)
    return r.render_page(
        f"PM report — {subject.portfolio_id} — {day.isoformat()}",
        f"Decision at the close of {day.isoformat()} for the next session; policy "
        f"{subject.policy}, limits {subject.limits}; as known at "
        f"{known.isoformat(timespec='minutes')}.",
        report_sections(store, day, subject, art, known),
    )


def pm_report_uri(lake: Lake, portfolio_id: str, day: dt.date) -> str:
    """Where the PM report of ``portfolio_id`` for ``day`` lives: under the lake root."""
    return f"{lake.location.root}/reports/pm-report-{portfolio_id}-{day.isoformat()}.html"


def pm_report_url(uri: str, base_url: str | None = None) -> str | None:
    """A browser's address for the report at ``uri``: ``base_url`` (default
    ``$ALPHAFACTORY_REPORTS_URL``) + the file name when set, else ``file://`` for a local
    path (percent-encoded); None for an object-store URI with no base URL to reach it by."""
    import os
    from pathlib import Path
    from urllib.parse import quote

    base = base_url if base_url is not None else os.environ.get(REPORTS_URL_ENV, "")
    if base:
        return f"{base.rstrip('/')}/{quote(uri.rstrip('/').rsplit('/', 1)[-1])}"
    if "://" in uri:
        return None
    return Path(uri).resolve().as_uri()


def pm_report_markdown(uri: str, base_url: str | None = None) -> str:
    """The approval screen's link to the report (Airflow renders the request body as
    Markdown): a clickable link, and the location as code to copy — a browser does not
    open a ``file://`` link from an ``http`` page, so the path must be copyable too."""
    url = pm_report_url(uri, base_url)
    if url is None:
        return f"PM report: `{uri}` (set {REPORTS_URL_ENV} to link it)"
    return f"[Open the PM report]({url}) — `{uri}`"


def write_pm_report(
    lake: Lake, day: dt.date, subject: ReportSubject, out: str | None = None
) -> str:
    """Write the report to ``out`` (default :func:`pm_report_uri`); return where it went."""
    target = out or pm_report_uri(lake, subject.portfolio_id, day)
    return h.write_document(target, render_pm_report(lake, day, subject), lake.location.options())
