"""The watch supervisor: keeps one prefix watch alive across outages and compactions.

`follow` owns the resume rule used by the engine and the agents: remember the last revision
delivered, re-watch from last + 1 after a broken stream (capped exponential backoff with
jitter), and after a compaction call the caller's `relist` (which rebuilds its state and
returns the revision it read at) and resume from that revision + 1; `list_then_follow` adds
the first listing, retried until etcd answers. It never logs; errors go to an optional
`on_error` callback. No etcd library is imported here.

It relies on one etcd property: all events of one revision arrive together (a txn's events
share one watch response), so resuming from the last delivered revision + 1 loses nothing.
"""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NoReturn

from fleetd.errors import Compacted, RegistryUnavailable
from fleetd.registry.kv import KV, WatchEvent

OnEvent = Callable[[WatchEvent], Awaitable[None] | None]
Relist = Callable[[], Awaitable[int]]
OnError = Callable[[Exception], None]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays between re-watch attempts: initial * factor**n, capped, +/- jitter fraction."""

    initial: float = 0.1
    factor: float = 2.0
    cap: float = 5.0
    jitter: float = 0.2

    def delay(self, attempt: int) -> float:
        base = min(self.initial * self.factor ** attempt, self.cap)
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)


class _Progress:
    """Where the watch resumes, and how many attempts have failed in a row."""

    def __init__(self, start_revision: int) -> None:
        self.next_revision = start_revision
        self.failures = 0
        self.needs_relist = False


async def follow(
    kv: KV,
    prefix: str,
    start_revision: int,
    on_event: OnEvent,
    relist: Relist,
    *,
    backoff: Backoff = Backoff(),
    on_error: OnError | None = None,
) -> NoReturn:
    """Deliver every event under `prefix` from `start_revision` on, forever (until cancelled).

    Exceptions raised by `on_event` or `relist` other than `RegistryUnavailable` propagate.
    """
    progress = _Progress(start_revision)
    while True:
        try:
            if progress.needs_relist:
                progress.next_revision = await relist() + 1
                progress.needs_relist = False
            await _stream(kv, prefix, on_event, progress, backoff)
        except Compacted as exc:
            _report(on_error, exc)
            progress.needs_relist = True
            continue
        except RegistryUnavailable as exc:
            _report(on_error, exc)
        await asyncio.sleep(backoff.delay(progress.failures))
        progress.failures += 1


async def _stream(
    kv: KV, prefix: str, on_event: OnEvent, progress: _Progress, backoff: Backoff
) -> None:
    """One watch attempt; returns or raises when the stream ends."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    watch = kv.watch_prefix(prefix, progress.next_revision)
    try:
        async for event in watch:
            await _deliver(on_event, event)
            progress.next_revision = event.mod_revision + 1
            progress.failures = 0
        raise RegistryUnavailable("watch stream ended")
    finally:
        if loop.time() - started > backoff.cap:
            progress.failures = 0  # a long healthy stream: the next break retries quickly
        await _close(watch)


async def _deliver(on_event: OnEvent, event: WatchEvent) -> None:
    result = on_event(event)
    if inspect.isawaitable(result):
        await result


async def _close(watch: object) -> None:
    aclose = getattr(watch, "aclose", None)
    if aclose is not None:
        await aclose()


def _report(on_error: OnError | None, exc: Exception) -> None:
    if on_error is not None:
        on_error(exc)


async def list_then_follow(kv: KV, prefix: str, on_event: OnEvent, relist: Relist,
                           on_error: OnError | None = None, retry_delay: float = 0.5) -> NoReturn:
    """`relist()` until etcd answers (the first listing), then `follow` from its revision + 1."""
    while True:
        try:
            start = await relist()
            break
        except RegistryUnavailable as exc:
            _report(on_error, exc)
            await asyncio.sleep(retry_delay)
    await follow(kv, prefix, start + 1, on_event, relist, on_error=on_error)
