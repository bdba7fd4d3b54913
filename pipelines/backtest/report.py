"""The backtest's HTML report: metrics, equity curve, drawdown, turnover and IC."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.backtest.metrics import Metrics
from pipelines.daily.config import DailyConfig
from pipelines.report import html as h


def render_backtest_report(
    run_id: str, config: DailyConfig, daily: pd.DataFrame, metrics: Metrics
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
    grid = '<div class="grid">' + "".join(f"<div>{c}</div>" for c in charts) + "</div>"
    return h.page(
        f"Backtest {run_id}",
        f"policy {config.policy}, limits {config.limits}, capital {config.initial_capital:,.0f}",
        [
            ("Metrics", head),
            ("Charts", grid),
            ("Daily", h.table(daily, max_rows=400, left=["date"])),
        ],
    )


def write_backtest_report(
    uri: str,
    run_id: str,
    config: DailyConfig,
    daily: pd.DataFrame,
    metrics: Metrics,
    storage_options: dict[str, str] | None = None,
) -> str:
    """Write the report to ``uri`` (a local path or ``s3://``); return ``uri``."""
    text = render_backtest_report(run_id, config, daily, metrics)
    return h.write_document(uri, text, storage_options)
