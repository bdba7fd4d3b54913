"""Reports: the PM's daily HTML report and the backtest report (self-contained HTML)."""

from pipelines.report.pm import render_pm_report, write_pm_report

__all__ = ["render_pm_report", "write_pm_report"]
