"""The single updating progress line on stderr while fleetctl waits.

Owns the text (pure: `waiting for 3 units: 1 launched, 2 loaded (attempt 4)`) and the writer,
which redraws one line with a carriage return only when its stream is a terminal; piped or in
CI (not a TTY) it writes nothing, so logs hold only the result lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TextIO

CLEAR = "\x1b[K"


def waiting_text(total: int, counts: Mapping[str, int], attempt: int) -> str:
    """`waiting for N unit(s): <count> <state>, ... (attempt A)`; states in the given order,
    zero counts left out."""
    noun = "unit" if total == 1 else "units"
    parts = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
    return f"waiting for {total} {noun}" + (f": {parts}" if parts else "") + f" (attempt {attempt})"


def attempt_of(polls: int, polls_per_attempt: int) -> int:
    """1-based attempt number of the poll with this 0-based index."""
    return polls // max(polls_per_attempt, 1) + 1


def is_tty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except ValueError:  # closed stream
        return False


class Line:
    """One redrawn line on `stream`; silent unless the stream is a TTY."""

    def __init__(self, stream: TextIO) -> None:
        self.stream, self.enabled, self.shown = stream, is_tty(stream), False

    def show(self, text: str) -> None:
        if self.enabled:
            self.stream.write("\r" + text + CLEAR)
            self.stream.flush()
            self.shown = True

    def clear(self) -> None:
        """Erase the line (before other output, and when the wait ends)."""
        if self.shown:
            self.stream.write("\r" + CLEAR)
            self.stream.flush()
            self.shown = False
