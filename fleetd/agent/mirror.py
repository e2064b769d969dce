"""A watch-fed copy of one registry prefix in memory: the agent's view of its desired set.

`Mirror` lists its prefix once (retrying until etcd answers), then applies the watch's events
one by one; it lists again only when the watch says its revision was compacted away
(`fleetd.registry.watch.follow` owns the resume and relist rules). Values are decoded once,
when they arrive; a record that does not decode is left out and reported. After every change
it calls `changed()`, so a loop can wake up and read `items` without touching etcd.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, NoReturn, TypeVar

from fleetd.errors import InvalidInput
from fleetd.registry.kv import KV, WatchEvent
from fleetd.registry.watch import list_then_follow

T = TypeVar("T")
Decode = Callable[[str, str], T]
OnError = Callable[[str, Exception], None]
RETRY_SECONDS = 0.5


class Mirror(Generic[T]):
    """key -> decoded value for every key under `prefix`; `ready` once the first listing is in."""

    def __init__(self, kv: KV, prefix: str, decode: Decode[T], changed: Callable[[], None],
                 on_error: OnError) -> None:
        self.kv = kv
        self.prefix = prefix
        self.items: dict[str, T] = {}
        self.listings = 0
        self.ready = asyncio.Event()
        self._decode = decode
        self._changed = changed
        self._on_error = on_error

    async def run(self) -> NoReturn:
        await list_then_follow(self.kv, self.prefix, self.apply, self.relist,
                               on_error=lambda exc: self._on_error(self.prefix, exc),
                               retry_delay=RETRY_SECONDS)

    async def relist(self) -> int:
        """Replace `items` with a fresh listing; return the revision it was read at."""
        listing = await self.kv.get_prefix(self.prefix)
        fresh = ((kv.key, self._decoded(kv.key, kv.value)) for kv in listing.items)
        self.items = {key: value for key, value in fresh if value is not None}
        self.listings += 1
        self.ready.set()
        self._changed()
        return listing.revision

    def apply(self, event: WatchEvent) -> None:
        value = self._decoded(event.key, event.value) if event.kind == "put" else None
        if value is None:
            self.items.pop(event.key, None)
        else:
            self.items[event.key] = value
        self._changed()

    def _decoded(self, key: str, value: str) -> T | None:
        try:
            return self._decode(key, value)
        except (InvalidInput, KeyError, ValueError, TypeError) as exc:
            self._on_error(key, InvalidInput(f"undecodable record: {exc!r}"))
            return None
