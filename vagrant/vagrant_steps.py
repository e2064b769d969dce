"""vagrant_steps: how vagrant_box.py and vagrant_cluster.py run their steps.

Each step prints its name and, when it ends, its time; a command's output goes to a log file,
never to the screen. A step that fails raises Failed, whose one-line message names the step, the
command's last output line and the log; main() prints it as `PROG: error: ...` and exits 1.
Standard library only: it runs before any venv exists.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


class Failed(Exception):
    """A check or step that failed: its message is the one line the user reads."""


@dataclass
class Steps:
    """The step printer of one program run: name, start time, log file."""

    prog: str
    log: Path
    started: float = 0.0

    def __post_init__(self) -> None:
        self.started = self.started or time.monotonic()
        self.log.parent.mkdir(parents=True, exist_ok=True)

    def say(self, message: str) -> None:
        print(f"{self.prog}: [{time.monotonic() - self.started:6.1f}s] {message}", flush=True)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Print `name`, run the block, print `name: ok (N s)`; a Failed inside passes through."""
        self.say(f"{name} ...")
        began = time.monotonic()
        with self.log.open("a") as out:
            out.write(f"\n==== {name}\n")
        yield
        self.say(f"{name}: ok ({time.monotonic() - began:.1f} s)")

    def run(self, step: str, argv: Sequence[str], *, env: dict[str, str] | None = None,
            timeout: float | None = None, stdin: str | None = None) -> str:
        """Run argv with its output appended to the log; return that output or raise Failed."""
        with self.log.open("a") as out:
            out.write(f"$ {' '.join(argv)}\n")
        try:
            proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                                  env={**os.environ, **(env or {})}, input=stdin,
                                  stdin=None if stdin is not None else subprocess.DEVNULL)
        except FileNotFoundError:
            raise Failed(f"{step}: {argv[0]} is not installed") from None
        except subprocess.TimeoutExpired:
            raise Failed(f"{step}: {argv[0]} did not finish within {timeout:.0f} s (log: {self.log})") \
                from None
        output = proc.stdout + proc.stderr
        with self.log.open("a") as out:
            out.write(output)
        if proc.returncode != 0:
            raise Failed(f"step {step!r} failed: {last_line(output) or f'exit {proc.returncode}'} "
                         f"(log: {self.log})")
        return proc.stdout


def last_line(output: str) -> str:
    """The last non-empty line of a command's output, stripped (what a one-line error quotes)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def main(prog: str, body: Callable[[], None]) -> None:
    """Run body; a Failed becomes `PROG: error: MESSAGE` on stderr and exit status 1."""
    try:
        body()
    except Failed as failure:
        print(f"{prog}: error: {failure}", file=sys.stderr, flush=True)
        sys.exit(1)
