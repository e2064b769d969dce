"""A watch-fed copy of one registry prefix in memory: the agent's view of its desired set.

`Mirror` lists its prefix once (retrying until etcd answers), then applies the watch's events
one by one; `fleetd.registry.watch.follow` owns the resume and relist-after-compaction rules.
Values are decoded once, when they arrive; a record that does not decode is left out and
reported. After every change it calls `changed()`, so a loop can wake up and read `items`
without touching etcd.

Every key carries the revision it was last written at, and deletes leave a tombstone until
the next listing, so a listing read while events are arriving never puts older state over
newer: `merge_listing` keeps, key by key, whichever is newer. `check()` is the safety net:
it lists afresh while the watch runs and merges; a key the listing had to correct is then
expected from the watch, and one the watch still has not delivered `patience` seconds later
(seen at a later check) is a catch (`on_catch`): the watch missed it. A healthy watch never
causes one; the patience covers a watch that is still resuming after an outage, and two
checks close together (the periodic one and the one after fencing is lifted).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, NoReturn, TypeVar

from fleetd.errors import InvalidInput
from fleetd.registry.kv import KV, Listing, WatchEvent
from fleetd.registry.watch import list_then_follow

T = TypeVar("T")
Decode = Callable[[str, str], T]
OnError = Callable[[str, Exception], None]
RETRY_SECONDS = 0.5
PATIENCE_SECONDS = 10.0  # > the watch's longest backoff (5 s) plus a reconnect


@dataclass(frozen=True, slots=True)
class Merged:
    """What merging one listing changes in a mirror (`merge_listing`)."""

    revisions: dict[str, int]  # every key present after the merge -> its mod revision
    puts: dict[str, str]  # keys the listing set (newer than what the mirror had) -> value
    deletes: frozenset[str]  # keys the listing removed (written before it, now absent)


def merge_listing(revisions: Mapping[str, int], tombstones: Mapping[str, int],
                  listing: Listing) -> Merged:
    """Merge `listing` into a mirror that holds `revisions` (key -> mod revision) and
    `tombstones` (key -> delete revision): for each key the newer record wins."""
    merged = dict(revisions)
    puts: dict[str, str] = {}
    for kv in listing.items:
        newest_known = max(revisions.get(kv.key, 0), tombstones.get(kv.key, 0))
        if kv.mod_revision > newest_known:
            merged[kv.key] = kv.mod_revision
            puts[kv.key] = kv.value
    listed = {kv.key for kv in listing.items}
    gone = frozenset(k for k, rev in revisions.items() if k not in listed and rev <= listing.revision)
    for key in gone:
        del merged[key]
    return Merged(merged, puts, gone)


class Mirror(Generic[T]):
    """key -> decoded value for every key under `prefix`; `ready` once the first listing is in."""

    def __init__(self, kv: KV, prefix: str, decode: Decode[T], changed: Callable[[], None],
                 on_error: OnError, on_catch: Callable[[int], None] = lambda n: None,
                 patience: float = PATIENCE_SECONDS, clock: Callable[[], float] | None = None) -> None:
        self.kv = kv
        self.prefix = prefix
        self.items: dict[str, T] = {}
        self.listings = 0
        self.ready = asyncio.Event()
        self._revisions: dict[str, int] = {}  # every key present, decodable or not
        self._tombstones: dict[str, int] = {}  # deletes seen since the last listing
        self._expected: dict[str, float] = {}  # corrected by a check (when), not yet on the watch
        self._patience = patience
        self._clock = clock or (lambda: asyncio.get_running_loop().time())
        self._decode = decode
        self._changed = changed
        self._on_error = on_error
        self._on_catch = on_catch

    async def run(self) -> NoReturn:
        await list_then_follow(self.kv, self.prefix, self.apply, self.relist,
                               on_error=lambda exc: self._on_error(self.prefix, exc),
                               retry_delay=RETRY_SECONDS)

    async def relist(self) -> int:
        """Merge a fresh listing (the first one, or after a compaction: the watch resumes after
        it); return the revision it was read at."""
        listing = await self.kv.get_prefix(self.prefix)
        self._merge(listing)
        self._expected.clear()
        return listing.revision

    async def check(self) -> int:
        """List afresh while the watch runs and `compare`; returns what `compare` returns."""
        return self.compare(await self.kv.get_prefix(self.prefix))

    def compare(self, listing: Listing) -> int:
        """Merge a fresh listing of the prefix, read while the watch runs (see the module
        docstring); returns how many earlier corrections the watch has not delivered within
        `patience` (also told to `on_catch`; each is counted once)."""
        now = self._clock()
        overdue = [key for key, noted in self._expected.items() if now - noted >= self._patience]
        for key in overdue:
            del self._expected[key]
        if overdue:
            self._on_catch(len(overdue))
        for key in self._merge(listing):
            self._expected.setdefault(key, now)
        return len(overdue)

    def _merge(self, listing: Listing) -> set[str]:
        merged = merge_listing(self._revisions, self._tombstones, listing)
        self._revisions = merged.revisions
        self._tombstones = {k: rev for k, rev in self._tombstones.items() if rev > listing.revision}
        for key in merged.deletes:
            self.items.pop(key, None)
        for key, value in merged.puts.items():
            self._store(key, value)
        self.listings += 1
        self.ready.set()
        self._changed()
        return set(merged.puts) | merged.deletes

    def apply(self, event: WatchEvent) -> None:
        self._expected.pop(event.key, None)
        if event.mod_revision <= self._revisions.get(event.key, 0):
            return  # a check already merged this key at this revision or a newer one
        if event.kind == "put":
            self._tombstones.pop(event.key, None)
            self._revisions[event.key] = event.mod_revision
            self._store(event.key, event.value)
        else:
            self._revisions.pop(event.key, None)
            self._tombstones[event.key] = event.mod_revision
            self.items.pop(event.key, None)
        self._changed()

    def _store(self, key: str, value: str) -> None:
        decoded = self._decoded(key, value)
        if decoded is None:
            self.items.pop(key, None)
        else:
            self.items[key] = decoded

    def _decoded(self, key: str, value: str) -> T | None:
        try:
            return self._decode(key, value)
        except (InvalidInput, KeyError, ValueError, TypeError) as exc:
            self._on_error(key, InvalidInput(f"undecodable record: {exc!r}"))
            return None
