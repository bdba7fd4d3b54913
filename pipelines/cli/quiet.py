"""Quiet terminal output: the CLI's own progress lines, not the libraries' chatter.

Inside a command, third-party log records below WARNING (Great Expectations' "ephemeral
docs site", SSH handshakes, Airflow's hooks) and the ``CryptographyDeprecationWarning``
that ``asyncssh`` and ``paramiko`` emit at import would interleave with the progress the
CLI prints; :func:`quiet_libraries` holds them back for the duration of one command and
restores everything afterwards (the CLI also runs in-process under tests).
``alphafactory --verbose …`` keeps every log line. :func:`log_to_file` keeps what a
quiet command would drop from the terminal (warnings, the libraries' log records at
WARNING and above) in a file instead (``alphafactory demo`` uses it).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Modules whose import-time deprecation warnings (cryptography's DSA/TripleDES) are noise.
NOISY_IMPORTS = ("asyncssh", "paramiko")


@contextmanager
def quiet_libraries(verbose: bool = False) -> Iterator[None]:
    """Within the block: log records below WARNING are dropped (every logger: Airflow's
    structlog configuration installs its own INFO handlers when first imported, after any
    level set here) and the libraries' import-time deprecation warnings are ignored."""
    if verbose:
        yield
        return
    previous = logging.root.manager.disable
    with warnings.catch_warnings():
        for module in NOISY_IMPORTS:
            warnings.filterwarnings("ignore", module=rf"{module}(\.|$)")
        logging.disable(logging.INFO)
        try:
            yield
        finally:
            logging.disable(previous)


class _Silenced(logging.Filter):
    """Drops every record: put on console handlers while a command logs to a file."""

    def filter(self, record: logging.LogRecord) -> bool:
        return False


_SILENCED = _Silenced()
#: The file handlers of the active :func:`log_to_file` blocks (warnings then go there too).
_LOGGING_TO_FILE: list[logging.Handler] = []


def _show_in_log(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: str | None = None,
) -> None:
    text = warnings.formatwarning(message, category, filename, lineno, line).rstrip()
    logging.getLogger("py.warnings").warning("%s", text)


def _all_handlers() -> list[logging.Handler]:
    loggers = [logging.root] + [
        obj for obj in logging.root.manager.loggerDict.values() if isinstance(obj, logging.Logger)
    ]
    return [handler for logger in loggers for handler in logger.handlers]


def silence_console_handlers() -> None:
    """Mute every handler that is not a file handler (idempotent). Libraries install
    console handlers when first imported (Airflow's structlog handler writes WARNINGs to
    stdout), so a command inside :func:`log_to_file` calls this again after such imports.
    Outside a :func:`log_to_file` block it does nothing (the terminal is the only log)."""
    if not _LOGGING_TO_FILE:
        return
    for handler in _all_handlers():
        if not isinstance(handler, logging.FileHandler) and _SILENCED not in handler.filters:
            handler.addFilter(_SILENCED)
    root = logging.getLogger()
    for handler in _LOGGING_TO_FILE:
        # Airflow's logging setup replaces the root handlers when first imported ...
        if handler not in root.handlers:
            root.addHandler(handler)
    # ... and warnings.showwarning with its own console writer
    warnings.showwarning = _show_in_log


@contextmanager
def log_to_file(path: Path) -> Iterator[Path]:
    """Within the block: log records that pass the current level, and the Python warnings
    not already ignored (as ``py.warnings`` records), go to ``path`` and not to the
    terminal (:func:`silence_console_handlers`), so the terminal shows only the command's
    own progress. Restores the handlers afterwards."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    # a root handler also keeps logging.lastResort (WARNING+ to stderr) from firing
    root.addHandler(handler)
    previous = warnings.showwarning
    _LOGGING_TO_FILE.append(handler)
    silence_console_handlers()
    try:
        yield path
    finally:
        _LOGGING_TO_FILE.pop()
        warnings.showwarning = previous
        root.removeHandler(handler)
        handler.close()
        for other in _all_handlers():
            other.removeFilter(_SILENCED)
