"""The PM's end-of-day report: one self-contained HTML file per portfolio and session.

Inputs are read from the lake only: the day's stage state (``stage_state``: targets, risk
model, scores, book, pre-trade preview, approval), ``daily_book`` history, data-quality
tables and the freshness of every input table. A missing input never fails the report:
its section says what is missing. The file is written under the lake root
(``<root>/reports/pm-report-<portfolio>-<day>.html``, local or S3) or where ``out`` says.

Trade reasons. For a trade ``Δw_i`` (fraction of NAV) the report shows three currency
amounts and names the largest as the reason:

* alpha  ``= α_i · Δw_i · V`` — expected one-day return captured;
* risk   ``= −λ · ((Σ w)_i − (Σ w0)_i) · Δw_i · V`` ≈ the change in the risk penalty
  attributable to the trade (``Σ = BFBᵀ + D``, ``λ`` the policy's risk aversion);
* cost   ``= −(half_spread + c·σ_i·√(|Δw_i|V / ADV_i)) · |Δw_i| · V`` — expected cost.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipelines.lake import Lake
from pipelines.lake.interface import Store
from pipelines.lake.stage_state import StageState
from pipelines.report import html as h
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


def _header(day: dt.date, config: ReportSubject, art: StageState) -> str:
    book = _artifact(art, "daily_book") or {}
    approval = _artifact(art, "approval") or {}
    targets = _artifact(art, "targets")
    status = targets.optimization.status if targets is not None else "not run"
    decision = approval.get("decision", "pending")
    stale = stale_marks(book)
    cls = {
        "optimizer": "ok" if status == "optimal" else "warn" if status == "relaxed" else "bad",
        "PM approval": "ok" if decision == "approved" else "bad",
        "stale marks": "warn" if stale else "ok",
    }
    return h.cards(
        [
            ("NAV", h.fmt(book.get("nav"))),
            ("day P&L", h.fmt(book.get("pnl"))),
            ("gross", h.pct(book.get("gross"))),
            ("net", h.pct(book.get("net"))),
            ("positions", h.fmt(book.get("n_positions"))),
            ("optimizer", status),
            ("PM approval", f"{decision} ({approval.get('actor', '–')})"),
            ("orders", h.fmt(book.get("orders"))),
            ("stale marks", ", ".join(stale) if stale else "none"),
        ],
        cls,
    )


def stale_marks(book: Any) -> list[str]:
    """The held securities a ``daily_book`` row marked at an earlier close."""
    if not book:
        return []
    value = book.get("stale_marks")
    if value is None or (isinstance(value, float) and np.isnan(value)) or not str(value):
        return []
    return [s for s in str(value).split(",") if s]


def _optimizer(art: StageState) -> str:
    targets = _artifact(art, "targets")
    if targets is None:
        return '<p class="bad">No targets: the optimize stage did not run.</p>'
    s = targets.summary()
    terms = pd.DataFrame(
        [
            {"term": k.replace("_term", ""), "value": s.get(k)}
            for k in ("objective", "alpha_term", "risk_term", "cost_term", "holding_term")
            if k in s
        ]
    )
    relax = pd.DataFrame(s["relaxations"])
    solves = targets.optimization.solves_frame(targets.portfolio_id)
    relax_html = (
        h.table(relax, left=["group", "constraint"])
        if not relax.empty
        else '<p class="ok">No constraint was relaxed: every constraint holds as declared.</p>'
    )
    rounding = (
        f"Whole-share rounding moved {s['rounding_lots_moved']} lot(s) and restored "
        f"{s['rounding_trades_restored']} small trade(s) to keep the policy's net band and "
        "gross cap"
        + ("." if s["rounding_within_policy"] else ": <b class='bad'>still outside</b>.")
    )
    return (
        f"<p>Status <b>{h.esc(s['status'])}</b> by {h.esc(s['solver'])} in "
        f"{h.fmt(float(s['solve_time']))} s ({s['n_solves']} solve(s)). {h.esc(s['message'])}</p>"
        f"<p>{rounding}</p>"
        f'<div class="grid"><div><b>Objective terms</b>{h.table(terms, left=["term"])}</div>'
        f"<div><b>Relaxed constraints</b>{relax_html}</div>"
        f"<div><b>Solver calls</b>"
        f"{h.table(solves[['stage', 'solver', 'status', 'solve_time', 'relaxed_groups']], left=['stage', 'solver', 'status', 'relaxed_groups'])}"
        "</div></div>"
    )


def _positions(art: StageState) -> str:
    targets = _artifact(art, "targets")
    if targets is None:
        return '<p class="note">(no targets)</p>'
    pos = targets.positions.copy()
    pos["abs_trade"] = pos["trade_notional"].abs()
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
    cols = ["security_id", "current %", "target %", "current_shares", "target_shares"]
    cols += ["trade_shares", "price", "alpha"]
    top = top.assign(
        **{
            "current %": (100 * top["current_weight"]).round(3),
            "target %": (100 * top["rounded_weight"]).round(3),
        }
    )
    return (
        f"<p>Target: {int((pos['target_shares'] != 0).sum())} names, long {h.pct(long_)}, "
        f"short {h.pct(short)}, traded notional {h.fmt(float(pos['abs_trade'].sum()))}.</p>"
        f'<div class="grid"><div>{h.png(fig)}</div><div>{h.table(top[cols], max_rows=25, left=["security_id"])}</div></div>'
    )


def trade_reasons(art: StageState, config: ReportSubject) -> pd.DataFrame:
    """Per trade: Δw, alpha / risk / cost amounts (currency) and the dominant reason."""
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
            "delta_bps": (1e4 * dw).round(2).to_numpy(),
            "alpha": (trades["alpha"] * dw * V).to_numpy(),
            "risk": (-policy.risk_aversion * marginal.reindex(trades.index) * dw * V).to_numpy(),
            "cost": (-(0.0005 + impact.fillna(0.0)) * dw.abs() * V).to_numpy(),
        }
    )
    parts = out[["alpha", "risk", "cost"]].abs()
    out["reason"] = parts.idxmax(axis=1).where(parts.max(axis=1) > 0, "rounding")
    return out.reindex(out["delta_bps"].abs().sort_values(ascending=False).index)


def _trades(art: StageState, config: ReportSubject) -> str:
    frame = trade_reasons(art, config)
    preview = _artifact(art, "pretrade") or {}
    execution = _artifact(art, "execution") or {}
    head = (
        f"<p>Orders for {h.esc(preview.get('trade_date', '–'))}: {preview.get('orders', 0)}, "
        f"pre-trade rejections {preview.get('rejected', 0)} "
        f"{h.esc(json.dumps(preview.get('breaches', {})))}; sent {execution.get('submitted', execution.get('sent', 0))}.</p>"
    )
    if frame.empty:
        return head + '<p class="note">(no trades)</p>'
    counts = frame["reason"].value_counts().to_dict()
    return (
        head + f"<p>Dominant reason: {h.esc(', '.join(f'{k} {v}' for k, v in counts.items()))}. "
        "Every trade below (sortable, filterable). <b>delta_bps</b>: the change in the "
        "name's weight, in basis points of NAV; <b>alpha</b>: expected return earned by the "
        "change (alpha × Δweight × NAV); <b>risk</b>: the change in the risk penalty "
        "(−risk aversion × marginal variance × Δweight × NAV); <b>cost</b>: expected "
        "half-spread + impact of the trade; all three in currency; <b>reason</b>: the largest "
        "of the three in absolute value (rounding when all are zero).</p>"
        + h.table(frame, left=["security_id", "side", "reason"], sortable=True)
    )


def _exposures(art: StageState) -> str:
    targets = _artifact(art, "targets")
    model = _artifact(art, "risk_model")
    if targets is None or model is None or targets.risk is None:
        return '<p class="note">(no risk model)</p>'
    pos = targets.positions
    sub = model.subset(list(pos["security_id"]))
    current = sub.decompose(pos["current_weight"].to_numpy(float))
    target = targets.risk
    frame = pd.DataFrame(
        {"current": current.factor_exposure, "target": target.factor_exposure}
    ).fillna(0.0)
    sectors = frame[frame.index.str.startswith("sector_")]
    styles = frame[~frame.index.str.startswith("sector_")]
    blocks = []
    for title, part in (
        ("Sector exposure (% NAV)", sectors),
        ("Factor exposure (σ units)", styles),
    ):
        fig, ax = h.figure(5.6, 3.2)
        y = np.arange(len(part))
        scale = 100.0 if title.startswith("Sector") else 1.0
        ax.barh(y - 0.2, scale * part["current"], 0.4, label="current", color="#9aa7bd")
        ax.barh(y + 0.2, scale * part["target"], 0.4, label="target", color="#2f5b9a")
        ax.set_yticks(y, [str(i).removeprefix("sector_") for i in part.index], fontsize=7)
        ax.axvline(0, color="#333", lw=0.6)
        ax.set_title(title)
        ax.legend(fontsize=7)
        blocks.append(f"<div>{h.png(fig)}</div>")
    return f'<div class="grid">{"".join(blocks)}</div>'


def _risk(art: StageState) -> str:
    targets = _artifact(art, "targets")
    if targets is None or targets.risk is None:
        return '<p class="note">(no ex-ante risk)</p>'
    r = targets.risk
    total = r.total_var or math.nan
    contrib = r.factor_contrib.sort_values(key=lambda s: s.abs(), ascending=False).head(12)
    fig, ax = h.figure(5.6, 3.2)
    labels = [str(i).removeprefix("sector_") for i in contrib.index] + ["specific"]
    values = [*(100 * contrib / total).tolist(), 100 * r.specific_var / total]
    ax.barh(np.arange(len(values)), values, color="#2f5b9a")
    ax.set_yticks(np.arange(len(values)), labels, fontsize=7)
    ax.set_xlabel("% of ex-ante variance")
    ax.set_title("Risk decomposition (Euler)")
    return (
        h.cards(
            [
                ("ex-ante vol (ann.)", h.pct(r.annualized_vol())),
                ("factor share", h.pct(r.factor_var / total)),
                ("specific share", h.pct(r.specific_var / total)),
            ]
        )
        + f'<div class="grid"><div>{h.png(fig)}</div></div>'
    )


def _pnl(
    lake: Store, day: dt.date, config: ReportSubject, art: StageState, known: dt.datetime
) -> str:
    hist = _read(lake, "daily_book", day - dt.timedelta(days=400), day, known)
    if not hist.empty:
        hist = hist[hist["portfolio_id"] == config.portfolio_id].sort_values("valid_date")
    book = _artifact(art, "daily_book")
    if book is None and not hist.empty and hist["valid_date"].iloc[-1] == day:
        book = hist.iloc[-1].to_dict()
    if book is None:
        return '<p class="note">(the reconcile stage has not booked the day yet)</p>'
    parts = pd.DataFrame(
        [
            {"component": "factor", "pnl": book.get("pnl_factor")},
            {"component": "specific", "pnl": book.get("pnl_specific")},
            {"component": "trading (incl. cost)", "pnl": book.get("pnl_trading")},
            {"component": "  of which cost", "pnl": -float(book.get("cost") or 0.0)},
            {"component": "total", "pnl": book.get("pnl")},
        ]
    )
    out = (
        "<p>Attribution of the session's P&amp;L: positions held from the previous close "
        "split by the factor model into factor and specific; the day's fills marked to the "
        "close (they include the cost); cost = impact of the fills against the arrival price "
        "+ commission (the market's move from the decision price to the arrival price is not "
        "a cost of trading).</p>" + h.table(parts, left=["component"])
    )
    stale = stale_marks(book)
    if stale:
        out += (
            f'<p class="warn">Stale marks: {len(stale)} held security(ies) had no close on '
            f"the session and are marked at their last known close: {h.esc(', '.join(stale))}.</p>"
        )
    if len(hist) > 1:
        import matplotlib.dates as mdates

        fig, ax = h.figure(6.4, 2.8)
        ax.plot(pd.to_datetime(hist["valid_date"]), hist["nav"], color="#2f5b9a")
        ax.set_title("NAV")
        # Sessions, not hours; the NAV as written, not "+1e7" plus an offset.
        ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=8))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
        ax.ticklabel_format(axis="y", style="plain", useOffset=False)
        fig.autofmt_xdate()
        out += h.png(fig)
    return out


def _alpha(
    lake: Store, day: dt.date, config: ReportSubject, art: StageState, known: dt.datetime
) -> str:
    scores = _artifact(art, "scores")
    if scores is None:
        return '<p class="bad">No scores for the day.</p>'
    fig, ax = h.figure(4.8, 2.8)
    ax.hist(scores["score"].astype(float), bins=30, color="#2f5b9a")
    ax.set_title("Score distribution")
    models = ", ".join(sorted(scores["model_id"].astype(str).unique()))
    hist = _read(lake, "daily_book", day - dt.timedelta(days=400), day, known)
    ic_html = ""
    if not hist.empty:
        hist = hist[hist["portfolio_id"] == config.portfolio_id].sort_values("valid_date")
        ic = hist["ic"].astype(float).dropna()
        if len(ic) > 1:
            fig2, ax2 = h.figure(4.8, 2.8)
            ax2.plot(pd.to_datetime(hist.loc[ic.index, "valid_date"]), ic.cumsum(), color="#1a7f37")
            ax2.set_title(f"Cumulative daily rank IC (mean {ic.mean():.3f})")
            fig2.autofmt_xdate()
            ic_html = f"<div>{h.png(fig2)}</div>"
    diag = _read(lake, "research_diagnostics", day - dt.timedelta(days=40), day, known)
    diag_html = ""
    if not diag.empty and "kind" in diag:
        ic_rows = diag[diag["kind"] == "ic"].sort_values("valid_date").tail(12)
        diag_html = "<b>Research diagnostics (latest)</b>" + h.table(
            ic_rows[["valid_date", "model_id", "name", "horizon", "value", "n"]],
            left=["model_id", "name"],
        )
    return (
        f"<p>{len(scores)} securities scored by <b>{h.esc(models)}</b>.</p>"
        f'<div class="grid"><div>{h.png(fig)}</div>{ic_html}</div>{diag_html}'
    )


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


def _quality(lake: Store, day: dt.date, known: dt.datetime) -> str:
    fresh = _freshness(lake, day, known)
    runs = _read(lake, "ingest_runs", day - dt.timedelta(days=7), day, known)
    runs_html = '<p class="note">(no ingestion runs recorded)</p>'
    if not runs.empty:
        runs = runs.sort_values(["valid_date", "feed"]).groupby("feed").tail(1)
        cols = [
            c for c in ("feed", "valid_date", "file_name", "status", "rows", "message") if c in runs
        ]
        runs_html = h.table(runs[cols], left=["feed", "file_name", "status", "message"])
    checks = _read(lake, "validation_results", day - dt.timedelta(days=3), day, known)
    checks_html = '<p class="note">(no contract results recorded)</p>'
    if not checks.empty:
        grouped = (
            checks.groupby(["feed", "valid_date"])
            .agg(
                rules=("rule", "count"), failed=("success", lambda s: int((~s.astype(bool)).sum()))
            )
            .reset_index()
        )
        checks_html = h.table(grouped, left=["feed"])
    quarantine = _read(lake, "quarantine", day - dt.timedelta(days=60), day, known)
    q_html = '<p class="ok">No open quarantines.</p>'
    if not quarantine.empty:
        open_ = quarantine[quarantine["status"] == "open"]
        if not open_.empty:
            q_html = '<p class="bad">Open quarantines (held back from the lake):</p>' + h.table(
                open_[["valid_date", "feed", "file_name", "rules", "message"]],
                left=["feed", "file_name", "rules", "message"],
            )
    return (
        "<b>Freshness of every input</b>"
        + h.table(fresh, left=["table", "feeds", "latest valid", "last known_at", "status"])
        + f'<div class="grid"><div><b>Last ingestion per feed</b>{runs_html}</div>'
        f"<div><b>Contract checks (last 3 days)</b>{checks_html}</div></div>" + q_html
    )


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
    sections = [
        ("Summary", _header(day, subject, art)),
        ("Optimizer status and relaxed constraints", _optimizer(art)),
        ("Target vs current portfolio", _positions(art)),
        ("Trades and their reasons", _trades(art, subject)),
        ("Sector and factor exposures", _exposures(art)),
        ("Ex-ante risk", _risk(art)),
        ("P&L attribution", _pnl(store, day, subject, art, known)),
        ("Alpha diagnostics", _alpha(store, day, subject, art, known)),
        ("Data quality and freshness", _quality(store, day, known)),
    ]
    rollout, steps = rollout_section(store, day, subject.portfolio_id, known)
    if not rollout.empty:
        sections.append(
            (
                "Rollout",
                h.table(rollout, left=["candidate", "kind", "ref", "stage", "verdict", "last step"])
                + "<b>Last steps</b>"
                + h.table(steps, left=["candidate_id", "event", "stage_after", "actor", "reason"]),
            )
        )
    return h.page(
        f"PM report — {subject.portfolio_id} — {day.isoformat()}",
        f"Decision at the close of {day.isoformat()} for the next session; policy "
        f"{subject.policy}, limits {subject.limits}; as known at "
        f"{known.isoformat(timespec='minutes')}.",
        sections,
    )


def pm_report_uri(lake: Lake, portfolio_id: str, day: dt.date) -> str:
    """Where the PM report of ``portfolio_id`` for ``day`` lives: under the lake root."""
    return f"{lake.location.root}/reports/pm-report-{portfolio_id}-{day.isoformat()}.html"


def write_pm_report(
    lake: Lake, day: dt.date, subject: ReportSubject, out: str | None = None
) -> str:
    """Write the report to ``out`` (default :func:`pm_report_uri`); return where it went."""
    target = out or pm_report_uri(lake, subject.portfolio_id, day)
    return h.write_document(target, render_pm_report(lake, day, subject), lake.location.options())
