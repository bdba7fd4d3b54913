"""Research stage: point-in-time panel contract, labels, splits, diagnostics, report.

Pure library code: no lake or Airflow imports. The caller builds a :class:`Panel`
from the bitemporal lake and persists whatever these functions return.
"""
