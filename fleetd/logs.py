"""Logging setup: the only module that imports structlog.

Loops get a logger with `get_logger(component)` and bind `unit=` / `machine=` as they go.
Under systemd (no TTY) lines are `key=value` so journalctl shows them whole; on a terminal
they are coloured.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO, cast

import structlog


class _Threshold:
    """The level below which lines are dropped; `set_verbosity` changes it while running
    (loggers bound before a change keep working: the check is made per line)."""

    level = logging.INFO

    def __call__(self, logger: Any, method: str, event: Any) -> Any:
        if _LEVELS.get(method, logging.INFO) < self.level:
            raise structlog.DropEvent
        return event


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "warn": logging.WARNING, "error": logging.ERROR, "exception": logging.ERROR,
           "critical": logging.CRITICAL}
_THRESHOLD = _Threshold()  # logging is process-wide: structlog's configuration is too


def set_verbosity(verbosity: int) -> None:
    """Debug lines on (verbosity > 0) or off, from now on (SIGHUP reload)."""
    _THRESHOLD.level = logging.DEBUG if verbosity > 0 else logging.INFO


def configure(verbosity: int) -> None:
    """Set the level (verbosity > 0 means debug) and the renderer once at start-up."""
    set_verbosity(verbosity)
    renderer: Any = (structlog.dev.ConsoleRenderer() if sys.stderr.isatty()
                     else structlog.processors.KeyValueRenderer(key_order=["event", "component"]))
    structlog.configure(
        processors=[
            _THRESHOLD,
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _CurrentStderr())),
        cache_logger_on_first_use=False,
    )


class _CurrentStderr:
    """Whatever `sys.stderr` is when a line is written (it may be replaced after start-up)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def get_logger(component: str, **bound: Any) -> Any:
    return structlog.get_logger().bind(component=component, **bound)
