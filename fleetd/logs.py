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


def configure(verbosity: int) -> None:
    """Set the level (verbosity > 0 means debug) and the renderer once at start-up."""
    level = logging.DEBUG if verbosity > 0 else logging.INFO
    renderer: Any = (structlog.dev.ConsoleRenderer() if sys.stderr.isatty()
                     else structlog.processors.KeyValueRenderer(key_order=["event", "component"]))
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
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
