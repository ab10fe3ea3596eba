"""Log lines in logrus' text format, which scripts around the Go tools expect on stderr::

    time="2024-05-01T12:00:00Z" level=debug msg="Root: /var/lib/containers/storage"
"""

from __future__ import annotations

import datetime as _dt
import logging
from typing import IO

from .flags import go_quote

LOGGER_NAME = "containers_storage"

_LEVELS = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "fatal",
}
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._/@^+")


def _field(text: str) -> str:
    return text if all(ch in _PLAIN for ch in text) else go_quote(text)


def _rfc3339(seconds: float) -> str:
    when = _dt.datetime.fromtimestamp(int(seconds)).astimezone()
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    offset = when.utcoffset()
    if not offset:
        return text + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


class LogrusFormatter(logging.Formatter):
    """Formats records as logrus' ``TextFormatter`` does without a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        level = _LEVELS.get(record.levelno, record.levelname.lower())
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        return f"time={_field(_rfc3339(record.created))} level={level} msg={_field(message)}"


class _CLIHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler the CLI installs; replaced on every run so repeated in-process runs don't stack."""


def configure_logging(stream: IO[str], debug: bool) -> None:
    """Send the package's log records to *stream*: everything with *debug*, else errors only."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        if isinstance(handler, _CLIHandler):
            logger.removeHandler(handler)
    handler = _CLIHandler(stream)
    handler.setFormatter(LogrusFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.ERROR)
