"""Replay a past session's decision exactly, from the lake as known then, and diff it
against what was stored (:mod:`pipelines.replay.session`; ``alphafactory replay``)."""

from pipelines.replay.session import (
    ARTEFACTS,
    IDENTICAL,
    ArtefactDiff,
    ReplayError,
    SessionReplay,
    replay_session,
    replay_sessions,
    sessions_of,
)

__all__ = [
    "ARTEFACTS",
    "IDENTICAL",
    "ArtefactDiff",
    "ReplayError",
    "SessionReplay",
    "replay_session",
    "replay_sessions",
    "sessions_of",
]
