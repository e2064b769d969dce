"""A level-triggered wake-up: watches and timers poke it, a loop waits on it."""

from __future__ import annotations

import asyncio
import contextlib


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
