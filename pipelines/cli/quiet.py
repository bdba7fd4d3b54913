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


@contextmanager
def log_to_file(path: Path) -> Iterator[Path]:
    """Within the block: log records that pass the current level, and every Python warning
    (``logging.captureWarnings``), are appended to ``path`` rather than printed, so the
    terminal shows only the command's own progress. Restores the handlers afterwards."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    # a root handler also keeps logging.lastResort (WARNING+ to stderr) from firing
    root.addHandler(handler)
    logging.captureWarnings(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")  # once per location, into the file
            yield path
    finally:
        logging.captureWarnings(False)
        root.removeHandler(handler)
        handler.close()
