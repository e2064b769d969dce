"""How long-lived loops run: a level-triggered wake-up (watches and timers poke it, a loop
waits on it), and `forever`, which makes a loop that must never end loud when it does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, NoReturn

from fleetd.errors import FleetError


class LoopEnded(FleetError):
    """A loop that must run until cancelled returned, or a CancelledError escaped from inside it."""


async def forever(loop: Coroutine[Any, Any, Any], name: str) -> NoReturn:
    """Await `loop`; raise LoopEnded if it ends other than by this task's own cancellation.

    asyncio.TaskGroup forgets a child that ends cancelled without the group asking: a
    CancelledError leaking out of a library call would end the loop silently while its
    siblings run on (a deaf watch, a dead agent loop). Through `forever` it stops the group
    instead, and the daemon with it, for systemd to restart.
    """
    try:
        await loop
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        raise LoopEnded(f"{name}: a CancelledError escaped from inside the loop") from None
    raise LoopEnded(f"{name}: the loop returned")


def spawn(group: asyncio.TaskGroup, loop: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
    """Start `loop` in `group` as a task named `name` that must never end (`forever`)."""
    return group.create_task(forever(loop, name), name=name)


class Wakeup:
    """Coalesces any number of pokes into one wake of the waiting loop."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def poke(self, *_: object) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> None:
        """Return when poked or after `timeout` seconds, whichever is first."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):  # unlike wait_for, never swallows a cancellation
                await self._event.wait()
        self._event.clear()
