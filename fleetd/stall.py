"""Stall reports: say where a loop's pass is stuck when it runs far longer than it should.

A `StallWatch` is told when a pass begins and ends. Its `run()` checks every few seconds; once
a pass has run past `after` seconds it logs one warning with the seconds so far and the
stack of the task running the pass (file:line function, innermost last), then again every
`after` seconds while the pass lasts. It only observes: cancelling is the loop's own business
(e.g. the agent's PASS_TIMEOUT).
"""

from __future__ import annotations

import asyncio
import gc
import inspect
from typing import Any

CHECK_SECONDS = 5.0


def stack_of(task: asyncio.Task[Any], limit: int = 40) -> list[str]:
    """Where `task` is suspended, outermost frame first, as `file:line function`.

    Follows the chain of awaited coroutines (`Task.get_stack` stops at the outermost one),
    into async generators too (`async for` awaits the generator's `asend` object, which
    names its generator only to the garbage collector).
    """
    frames: list[str] = []
    awaited: Any = task.get_coro()
    while awaited is not None and len(frames) < limit:
        awaited = _generator_of(awaited)
        frame = _first_attribute(awaited, _FRAMES)
        if frame is None:
            if not any(hasattr(awaited, a) for a in _AWAITS):
                frames.append(f"awaiting {type(awaited).__name__}")
            break
        code = frame.f_code
        frames.append(f"{code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno} {code.co_name}")
        awaited = _first_attribute(awaited, _AWAITS)
    return frames


_FRAMES = ("cr_frame", "gi_frame", "ag_frame")
_AWAITS = ("cr_await", "gi_yieldfrom", "ag_await")


def _first_attribute(obj: Any, names: tuple[str, ...]) -> Any:
    """The first of `names` that `obj` has and is not None (coroutine, generator and async
    generator spell their frame and their awaitee differently)."""
    return next((value for name in names if (value := getattr(obj, name, None)) is not None), None)


def _generator_of(awaited: Any) -> Any:
    """The async generator behind an `asend`/`athrow` awaitable; anything else as it is."""
    if type(awaited).__name__ not in ("async_generator_asend", "async_generator_athrow"):
        return awaited
    return next((r for r in gc.get_referents(awaited) if inspect.isasyncgen(r)), awaited)


class StallWatch:
    """Reports a pass that has run longer than `after` seconds (see the module docstring)."""

    def __init__(self, what: str, after: float, log: Any) -> None:
        self.what = what
        self.after = after
        self.log = log
        self._task: asyncio.Task[Any] | None = None
        self._began: float | None = None
        self._reported = 0.0

    def begin(self) -> None:
        self._task = asyncio.current_task()
        self._began = asyncio.get_running_loop().time()
        self._reported = 0.0

    def end(self) -> None:
        self._began = None

    def check(self, now: float) -> None:
        """Log once per `after` seconds while a pass is overdue."""
        if self._began is None or self._task is None:
            return
        running = now - self._began
        if running < self.after or running - self._reported < self.after:
            return
        self._reported = running
        self.log.warning(f"{self.what} still running", seconds=round(running, 1),
                         stack=stack_of(self._task))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            self.check(loop.time())
