"""The package logger, created on first use.

``logging`` costs several milliseconds to import and most runs never log, so
modules call these helpers instead of holding a logger.  A program (the CLI)
can set :data:`on_first_use` to configure the logger the moment it is needed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import logging

LOGGER_NAME = "containers_storage"

on_first_use: Callable[[logging.Logger], None] | None = None
#: Set by a program that knows debug messages go nowhere (the CLI without
#: ``--debug``), so that a debug message does not cost the ``logging`` import.
debug_off = False
_logger: logging.Logger | None = None


def logger() -> logging.Logger:
    global _logger
    if _logger is None:
        import logging

        _logger = logging.getLogger(LOGGER_NAME)
        if on_first_use is not None:
            on_first_use(_logger)
    return _logger


def warning(message: str, *args: Any) -> None:
    logger().warning(message, *args)


def debug(message: str, *args: Any) -> None:
    if not debug_off:
        logger().debug(message, *args)
