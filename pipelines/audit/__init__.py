"""The leak audit: research outputs recomputed as known at each session, compared with the
lake and with hindsight (:mod:`pipelines.audit.leaks`), over a lake view that never writes
(:mod:`pipelines.audit.store`)."""

from __future__ import annotations

from pipelines.audit.leaks import LeakReport, audit_leaks, last_audit_line, record
from pipelines.audit.store import AuditLake, AuditWriteError

__all__ = ["AuditLake", "AuditWriteError", "LeakReport", "audit_leaks", "last_audit_line", "record"]
