"""The tool's messages to its user, through ``logging`` (logger ``"iaside"``).

Warnings (something is off, or was guessed) and notes (something was filled in for the user)
print as one line on standard error, ``iaside: warning: …`` / ``iaside: note: …``, in the
terminal and in notebooks alike. Silence notes with
``logging.getLogger("iaside").setLevel(logging.WARNING)``, or attach your own handlers.
"""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("iaside")


class _StderrLine(logging.Handler):
    """One line on the *current* standard error (so redirected or captured streams see it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            kind = "warning" if record.levelno >= logging.WARNING else "note"
            print(f"iaside: {kind}: {record.getMessage()}", file=sys.stderr)
        except Exception:
            self.handleError(record)


if not logger.handlers:
    logger.addHandler(_StderrLine())
    logger.setLevel(logging.INFO)
    logger.propagate = False


def warn(message: str) -> None:
    """Something is off or was guessed; the message says what to do about it."""
    logger.warning(message)


def note(message: str) -> None:
    """Something the user did not say was filled in; the message says what and where from."""
    logger.info(message)
