"""Reports: the PM's daily HTML report (self-contained HTML, read from the lake only) and
the HTML building blocks other reports (the backtest's) are made of."""

from pipelines.report.pm import ReportSubject, pm_report_uri, render_pm_report, write_pm_report

__all__ = ["ReportSubject", "pm_report_uri", "render_pm_report", "write_pm_report"]
