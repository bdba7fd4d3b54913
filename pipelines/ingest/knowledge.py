"""When did we know it: the knowledge time a delivered row gets.

A row is known from the moment **we received it** — the vendor's publish time is a claim
about the vendor's clock, kept beside the row's run (``ingest_runs.published_at``) but
never trusted to say what we knew: a file fetched days late, or a restatement stamped with
an old publish time, would otherwise rewrite what the lake says we knew in the past.

Loading history is the one legitimate reason to date rows earlier than their receipt (a
research lake needs the vendor's history as it was published). That is a :class:`Backdate`:
an explicit decision with a reason and an author, recorded on every run it stamps
(``ingest_runs.backdate``). Without one, nothing lands in the past.
"""

from __future__ import annotations

import datetime as dt
import getpass
import logging
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return "unknown"


@dataclass(frozen=True)
class Backdate:
    """Load at the vendor's declared time instead of our receipt time, on purpose.

    ``reason`` is required (an empty one is refused); ``by`` names who decided (the OS user,
    or the Airflow run). Both are written to ``ingest_runs`` for every file they stamp.
    """

    reason: str
    by: str = field(default_factory=_user)

    def __post_init__(self) -> None:
        if not self.reason.strip():
            raise ValueError("a backdate needs a reason (it is recorded in ingest_runs)")

    @property
    def label(self) -> str:
        """One line for the run log: who backdated and why."""
        if not self.by:
            return self.reason.strip()
        return f"backdated by {self.by}: {self.reason.strip()}"

    @classmethod
    def recorded(cls, label: str) -> Backdate:
        """The backdate a recorded run carries (its ``ingest_runs.backdate`` label), for a
        later step of the same delivery (a quarantine release)."""
        return cls(label, by="")


def rows_known_at(
    declared: dt.datetime | None, received: dt.datetime, backdate: Backdate | None
) -> dt.datetime:
    """The knowledge time rows delivered at ``received`` get: ``received``; the vendor's
    ``declared`` time only under an explicit ``backdate`` — and never later than receipt
    (a vendor clock ahead of ours cannot make a row known after we hold it)."""
    if backdate is None or declared is None:
        return received
    return min(declared, received)


def backdate_label(backdate: Backdate | None) -> str | None:
    return None if backdate is None else backdate.label
