"""The backtest's HTML report: metrics, equity curve, drawdown, turnover and IC; with an
:class:`~pipelines.backtest.metrics.Analysis`, also the book against the equal-weight and
cap-weighted universe (with rolling betas), the book over time (exposures, concentration,
net exposure per sector, costs split into delay, impact, fees and opportunity, the trades
and a Monte Carlo of their sequences) and the signal's statistics (IC, rank IC, ICIR,
quantile portfolios, rank autocorrelation, rank IC by sector); with ``retrains``, the
walk-forward retrains. The models that scored the sessions come from the equity curve's
``model_id``."""

from __future__ import annotations

import matplotlib.dates as mdates
import numpy as np
import pandas as pd

from pipelines.backtest.metrics import Analysis, Metrics
from pipelines.backtest.retrain import Retrain
from pipelines.daily.config import DailyConfig
from pipelines.lake import Lake
from pipelines.report import html as h


def render_backtest_report(
    run_id: str,
    config: DailyConfig,
    daily: pd.DataFrame,
    metrics: Metrics,
    analysis: Analysis | None = None,
    retrains: list[Retrain] | None = None,
) -> str:
    m = metrics
    head = h.cards(
        [
            ("sessions", str(m.sessions)),
            ("total return", h.pct(m.total_return)),
            ("annual return (arithmetic, 252 × mean)", h.pct(m.annual_return)),
            ("CAGR (geometric)", h.pct(m.cagr)),
            ("annual vol", h.pct(m.annual_vol)),
            ("Sharpe", h.fmt(m.sharpe, 3)),
            (
                "Sharpe 95% CI (bootstrap)",
                f"{h.fmt(m.sharpe_ci_low, 2)} … {h.fmt(m.sharpe_ci_high, 2)}",
            ),
            ("Sortino", h.fmt(m.sortino, 3)),
            ("Calmar", h.fmt(m.calmar, 3)),
            ("t-stat", h.fmt(m.sharpe_tstat, 3)),
            ("max drawdown", h.pct(m.max_drawdown)),
            ("turnover / day", h.pct(m.turnover)),
            ("costs", h.fmt(m.total_cost)),
            ("cost (bps traded)", h.fmt(m.cost_bps, 3)),
            ("hit rate", h.pct(m.hit_rate)),
            ("mean IC", h.fmt(m.mean_ic, 3)),
        ]
    )
    charts = []
    if len(daily):
        dates = pd.to_datetime(daily["date"])
        nav = daily["nav"].to_numpy(float)
        fig, ax = h.figure(6.4, 3.0)
        ax.plot(dates, nav, color="#2f5b9a")
        ax.set_title("Equity curve (NAV)")
        fig.autofmt_xdate()
        charts.append(h.png(fig))
        peak = np.maximum.accumulate(nav)
        fig, ax = h.figure(6.4, 2.4)
        ax.fill_between(dates, -100 * (1 - nav / peak), color="#c62828", alpha=0.5)
        ax.set_title("Drawdown (%)")
        fig.autofmt_xdate()
        charts.append(h.png(fig))
        fig, ax = h.figure(6.4, 2.4)
        ax.plot(dates, daily["ic"].fillna(0).cumsum(), color="#1a7f37")
        ax.set_title("Cumulative daily rank IC")
        fig.autofmt_xdate()
        charts.append(h.png(fig))
    statistics = _statistics(daily, charts)
    extra = _analysis_sections(analysis, charts) if analysis is not None else []
    models = _models_section(daily, retrains or [])
    if models:
        extra.append(("Models", models))
    grid = '<div class="grid">' + "".join(f"<div>{c}</div>" for c in charts) + "</div>"
    return h.page(
        f"Backtest {run_id}",
        f"policy {config.policy}, limits {config.limits}, capital {config.initial_capital:,.0f}",
        [
            ("Metrics", head),
            *extra,
            ("Charts", grid),
            ("Statistics", statistics),
            ("Daily", h.table(daily, max_rows=400, left=["date"])),
        ],
    )


def _analysis_sections(analysis: Analysis, charts: list[str]) -> list[tuple[str, str]]:
    """Benchmark-relative and signal sections (a quantile chart appended to ``charts``)."""
    rows = [
        {
            "benchmark": b.benchmark.replace("_", "-"),
            "sessions": b.sessions,
            "excess return % (arith., annual)": round(100 * b.excess_return, 3),
            "tracking error %": round(100 * b.tracking_error, 3),
            "information ratio": b.information_ratio,
            "beta": b.beta,
            "correlation": b.correlation,
            "benchmark CAGR %": round(100 * b.benchmark_cagr, 3),
        }
        for b in analysis.benchmarks
    ]
    sections = [
        (
            "Against the universe",
            h.table(pd.DataFrame(rows), left=["benchmark"])
            + '<p class="note">Equal-weight: every priced security, equally weighted, each '
            "session; cap-weighted: by the previous session's market cap.</p>",
        )
    ]
    betas = analysis.rolling_beta
    if len(betas):
        fig, ax = h.figure(6.4, 2.4)
        for col in betas.columns:
            ax.plot(betas.index, betas[col].to_numpy(float), label=col.replace("_", "-"), lw=1)
        ax.axhline(0, color="#888", lw=0.8)
        ax.legend(fontsize=7)
        ax.set_title("Rolling beta to the universe")
        fig.autofmt_xdate()
        charts.append(h.png(fig))
    book = _book_section(analysis, charts)
    if book:
        sections.append(("Book over time", book))
    s = analysis.signal
    if s is None:
        sections.append(("Signal", '<p class="note">No scores recorded for this run.</p>'))
        return sections
    signal = h.cards(
        [
            ("days", str(s.days)),
            ("mean IC", h.fmt(s.ic_mean, 3)),
            ("IC t-stat", h.fmt(s.ic_tstat, 3)),
            ("mean rank IC", h.fmt(s.rank_ic_mean, 3)),
            ("rank IC t-stat", h.fmt(s.rank_ic_tstat, 3)),
            ("ICIR (annualised)", h.fmt(s.icir_annual, 3)),
            ("rank autocorrelation", h.fmt(s.rank_autocorrelation, 3)),
            ("top − bottom quantile (cum.)", h.pct(s.quantile_spread)),
        ]
    )
    q = analysis.quantiles
    if len(q):
        fig, ax = h.figure(6.4, 2.6)
        for col in q.columns:
            ax.plot(q.index, 100 * q[col].to_numpy(float), label=str(col), lw=1)
        ax.legend(fontsize=7, ncol=len(q.columns))
        ax.set_title("Quantile portfolios: cumulative return (%), Q1 = lowest scores")
        fig.autofmt_xdate()
        charts.append(h.png(fig))
    note = (
        "<p class=\"note\">Each session's scores against the next session's total returns: "
        "IC (Pearson) and rank IC (Spearman) with t = mean / (sd / √days); ICIR = √252 · "
        "mean / sd of the rank IC; rank autocorrelation = Spearman correlation of "
        "consecutive sessions' scores.</p>"
    )
    by_sector = ""
    if len(analysis.sectors):
        table = analysis.sectors.assign(
            mean_rank_ic=analysis.sectors["mean_rank_ic"].round(4),
            rank_ic_tstat=analysis.sectors["rank_ic_tstat"].round(2),
        ).rename(columns={"mean_rank_ic": "mean rank IC", "rank_ic_tstat": "t-stat"})
        by_sector = (
            "<h3>Rank IC by sector</h3>"
            + h.table(table, left=["sector"])
            + '<p class="note">Within each sector of the security master as known at each '
            "session: the rank IC among its names (sessions with at least 5), its mean and "
            "t = mean / (sd / √sessions).</p>"
        )
    sections.append(("Signal", signal + note + by_sector))
    return sections


def _book_section(analysis: Analysis, charts: list[str]) -> str:
    """Exposures and concentration, net exposure per sector, costs split and the trades
    with their Monte Carlo (charts of the first three appended to ``charts``)."""
    html = ""
    ex = analysis.exposures.dropna(how="all")
    if len(ex):
        fig, ax = h.figure(6.4, 2.6)
        for col, color in (("long", "#1a7f37"), ("short", "#c62828"), ("net", "#2f5b9a")):
            ax.plot(ex.index, 100 * ex[col].to_numpy(float), label=col, color=color, lw=1)
        ax.axhline(0, color="#888", lw=0.8)
        ax.legend(fontsize=7, ncol=3)
        ax.set_title("Exposure (% of NAV)")
        fig.autofmt_xdate()
        charts.append(h.png(fig))
        fig, ax = h.figure(6.4, 2.4)
        ax.plot(ex.index, ex["effective_names"].to_numpy(float), color="#6a3d9a", lw=1)
        ax.set_title("Concentration: effective number of names (Σ|w|)² / Σw²")
        fig.autofmt_xdate()
        charts.append(h.png(fig))
        summary = pd.DataFrame(
            {
                "mean": ex.mean(),
                "min": ex.min(),
                "max": ex.max(),
                "last": ex.iloc[-1],
            }
        )
        pct_rows = ["long", "short", "gross", "net", "largest", "top10_share"]
        summary.loc[pct_rows] = 100 * summary.loc[pct_rows]
        html += (
            "<h3>Exposures and concentration</h3>"
            + h.table(summary.round(2).rename_axis("measure").reset_index(), left=["measure"])
            + '<p class="note">Long, short, gross, net and largest in % of NAV; top-10 share '
            "in % of the gross; effective names = (Σ|w|)² / Σw² (N for an equal-weight book); "
            "positions = names held at the close.</p>"
        )
    sec = analysis.sector_exposures
    if len(sec) and len(sec.columns):
        # A heatmap (sectors × sessions, diverging around 0): a dozen lines overlap.
        values = 100 * sec.to_numpy(float).T
        bound = float(np.nanmax(np.abs(values))) or 1.0
        fig, ax = h.figure(6.4, 0.9 + 0.22 * len(sec.columns))
        span = (
            float(mdates.date2num(sec.index[0])),
            float(mdates.date2num(sec.index[-1])),
            len(sec.columns) - 0.5,
            -0.5,
        )
        image = ax.imshow(values, aspect="auto", cmap="RdBu", vmin=-bound, vmax=bound, extent=span)
        ax.set_yticks(range(len(sec.columns)), [str(c) for c in sec.columns], fontsize=6)
        ax.xaxis_date()
        fig.colorbar(image, ax=ax, fraction=0.03, pad=0.01)
        ax.set_title("Net exposure per sector (% of NAV)")
        fig.autofmt_xdate()
        charts.append(h.png(fig))
        table = pd.DataFrame(
            {"mean %": 100 * sec.mean(), "min %": 100 * sec.min(), "max %": 100 * sec.max()}
        )
        html += "<h3>Net exposure per sector</h3>" + h.table(
            table.round(3).rename_axis("sector").reset_index(), left=["sector"]
        )
    costs = analysis.costs
    if len(costs):
        from pipelines.backtest.book import COST_PARTS

        traded = float(costs["traded_notional"].sum())
        totals = pd.DataFrame(
            {
                "component": list(COST_PARTS),
                "total": [float(costs[c].sum()) for c in COST_PARTS],
                "bps of traded": [
                    1e4 * float(costs[c].sum()) / traded if traded else float("nan")
                    for c in COST_PARTS
                ],
            }
        )
        fig, ax = h.figure(6.4, 2.4)
        for c in COST_PARTS:
            ax.plot(costs.index, costs[c].cumsum().to_numpy(float), label=c, lw=1)
        ax.legend(fontsize=7, ncol=4)
        ax.set_title("Cumulative cost by component (currency)")
        fig.autofmt_xdate()
        charts.append(h.png(fig))
        html += (
            "<h3>Costs split</h3>"
            + h.table(totals.round(3), left=["component"])
            + "<p class=\"note\">From each order's TCA: delay = the market's move from the "
            "decision price to the arrival price (session open) on the filled quantity; impact "
            "= fills against the arrival price; fees = commissions; opportunity = the unfilled "
            "quantity's move to the close (not paid). Positive = a cost.</p>"
        )
    trades = analysis.trades
    if trades is not None and len(trades.trades):
        tr = trades.trades
        closed = tr[~tr["open"]]
        wins = closed["pnl"] > 0
        cards = h.cards(
            [
                ("trades", str(len(tr))),
                ("closed", str(len(closed))),
                ("hit rate (closed)", h.pct(float(wins.mean()) if len(closed) else None)),
                ("mean sessions held", h.fmt(float(tr["sessions"].mean()), 1)),
                ("mean P&L / trade", h.fmt(float(tr["pnl"].mean()), 0)),
                ("coverage of the book's P&L", h.pct(trades.coverage)),
            ]
        )
        html += "<h3>Trades</h3>" + cards
        mc = analysis.trade_monte_carlo
        if mc is not None and mc.paths:
            frame = pd.DataFrame([{"statistic": k, "value": v} for k, v in mc.to_dict().items()])
            html += (
                f"<h3>Monte Carlo of trade sequences ({mc.horizon} trades, one year's)</h3>"
                + h.table(frame, left=["statistic"])
                + '<p class="note">A trade is a position\'s life in one security (opened from '
                "flat, held to flat or a change of side); its return is its P&L over the NAV "
                "it opened at. Paths draw a year's trades with replacement and compound them in "
                "the drawn order. Trades are taken as independent and one after another, where "
                "the book holds hundreds at once that share the market's moves: read it beside "
                "the Monte Carlo of daily returns under Statistics.</p>"
            )
    return html


def _models_section(daily: pd.DataFrame, retrains: list[Retrain]) -> str:
    """Which model scored which sessions (from the curve's ``model_id``), and the retrains."""
    if "model_id" not in daily or not len(daily):
        return ""
    ids = daily["model_id"].fillna("").astype(str)
    spans = (ids != ids.shift()).cumsum()
    rows = [
        {
            "model": ids.loc[group.index[0]] or "(session skipped)",
            "first session": str(group["date"].iloc[0]),
            "last session": str(group["date"].iloc[-1]),
            "sessions": len(group),
        }
        for _, group in daily.groupby(spans, sort=True)
    ]
    html = h.table(
        pd.DataFrame(rows), max_rows=400, left=["model", "first session", "last session"]
    )
    if retrains:
        fits = pd.DataFrame(
            [
                {
                    "retrain": str(r.day),
                    "model": r.model_id or f"none: {r.error}",
                    "train": f"{r.train_start} … {r.train_end}" if r.model_id else "—",
                    "validation rank IC": r.oos_rank_ic,
                    "sessions scored": r.sessions,
                    "fit s": round(r.fit_seconds, 2),
                    "scoring s": round(r.score_seconds, 2),
                }
                for r in retrains
            ]
        )
        html += "<h3>Walk-forward retrains</h3>" + h.table(
            fits, max_rows=400, left=["retrain", "model", "train"]
        )
    return html


def _statistics(daily: pd.DataFrame, charts: list[str]) -> str:
    """Monthly returns, the deepest drawdowns and a Monte Carlo of the daily returns (and
    a rolling-Sharpe chart appended to ``charts``)."""
    from pipelines.backtest.stats import (
        drawdown_periods,
        monte_carlo,
        monthly_returns,
        rolling_sharpe,
        rolling_window,
    )

    if len(daily) < 10:
        return "<p>Too few sessions for statistics.</p>"
    returns = pd.Series(daily["ret"].to_numpy(float), index=pd.to_datetime(daily["date"]))
    window = rolling_window(len(returns))
    roll = rolling_sharpe(returns, window=window)
    if len(roll):
        fig, ax = h.figure(6.4, 2.4)
        ax.plot(roll.index, roll.to_numpy(), color="#6a3d9a")
        ax.axhline(0, color="#888", lw=0.8)
        ax.set_title(f"Rolling Sharpe ({window} sessions)")
        fig.autofmt_xdate()
        charts.append(h.png(fig))
    months = monthly_returns(returns)
    months_html = h.table((100 * months).round(2).reset_index(), left=["year"])
    dd = drawdown_periods(returns)
    for col in ("peak", "trough", "recovery"):
        dd[col] = [d.date().isoformat() if isinstance(d, pd.Timestamp) else "—" for d in dd[col]]
    dd["depth"] = (100 * dd["depth"]).round(2)
    mc = monte_carlo(returns.to_numpy(), horizon=252).to_dict()
    mc_frame = pd.DataFrame([{"statistic": k, "value": v} for k, v in mc.items()])
    return (
        "<h3>Monthly returns (%)</h3>"
        + months_html
        + "<h3>Deepest drawdowns (depth in %)</h3>"
        + h.table(dd, left=["peak", "trough", "recovery"])
        + "<h3>Monte Carlo over one year (block bootstrap of daily returns)</h3>"
        + h.table(mc_frame, left=["statistic"])
    )


def write_backtest_report(
    uri: str,
    run_id: str,
    config: DailyConfig,
    daily: pd.DataFrame,
    metrics: Metrics,
    storage_options: dict[str, str] | None = None,
    analysis: Analysis | None = None,
    retrains: list[Retrain] | None = None,
) -> str:
    """Write the report to ``uri`` (a local path or ``s3://``); return ``uri``."""
    text = render_backtest_report(run_id, config, daily, metrics, analysis, retrains)
    return h.write_document(uri, text, storage_options)


def write_analysed_report(
    lake: Lake,
    run_id: str,
    config: DailyConfig,
    daily: pd.DataFrame,
    metrics: Metrics,
    retrains: list[Retrain] | None = None,
) -> tuple[str, Analysis]:
    """The report with the run's :class:`Analysis` (read from the lake), written where
    ``run_backtest`` writes it, ``<lake root>/reports/backtest-<run id>.html``; returns
    the path and the analysis."""
    from pipelines.backtest.metrics import analyse_run

    analysis = analyse_run(lake, run_id, daily, initial_capital=config.initial_capital)
    path = write_backtest_report(
        f"{lake.location.root}/reports/backtest-{run_id}.html",
        run_id,
        config,
        daily,
        metrics,
        lake.location.options(),
        analysis,
        retrains,
    )
    return path, analysis
