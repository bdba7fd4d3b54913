"""The root of every error Alpha Factory raises on purpose.

Each package derives its errors from :class:`AlphaFactoryError` (usually together with the
builtin it refines, e.g. ``class LakeError(AlphaFactoryError)`` or
``class FeedConfigError(AlphaFactoryError, ValueError)``), so a caller can tell "the
platform refused, with a message meant for a person" from a bug. The CLI prints an
:class:`AlphaFactoryError` as one line and exits non-zero; anything else is a traceback.
"""

from __future__ import annotations


class AlphaFactoryError(Exception):
    """An expected failure whose message names what to fix (file, row, rule, date, …)."""


class ConfigurationError(AlphaFactoryError, ValueError):
    """A setting, a YAML declaration or a command-line value is not acceptable."""
