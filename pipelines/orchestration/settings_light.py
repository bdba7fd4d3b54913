"""Settings DAG files read at parse time, without importing pydantic-settings' full model.

Values come from the same ``ALPHAFACTORY_*`` variables as :mod:`pipelines.config`.
"""

from __future__ import annotations

import os


def ingest_deadline() -> float:
    """Seconds an SFTP sensor waits for a session's files before the run fails loudly."""
    return float(os.environ.get("ALPHAFACTORY_INGEST_DEADLINE_SECONDS", str(4 * 3600)))


def ingest_poke_interval() -> float:
    """Seconds between two looks for the files."""
    return float(os.environ.get("ALPHAFACTORY_INGEST_POKE_SECONDS", "60"))
