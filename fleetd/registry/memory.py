"""An in-process implementation of the KV port, for tier-2 tests.

`MemoryKV` owns a faithful model of the etcd semantics fleetd relies on: one global revision
counter, create/mod revision and version per key, transactions with etcd's compare rules,
leases that expire on an injectable clock (checked lazily on every call, or by `expire()`),
watches that replay a kept history from any revision, `compact()` and an outage switch
(`fail(True)`) that makes every call and every open watch raise `RegistryUnavailable`.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import operator
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from fleetd.errors import Compacted, NotFound, RegistryUnavailable
from fleetd.registry.kv import (
    Compare,
    Delete,
    KeyValue,
    Listing,
    Op,
    Put,
    TxnResult,
    WatchEvent,
)

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt,
}


@dataclass(slots=True)
class _Lease:
    ttl: int
    deadline: float
    keys: set[str] = field(default_factory=set)


class MemoryKV:
    """The KV port in memory. Not thread-safe; use from one event loop."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._data: dict[str, KeyValue] = {}
        self._versions: dict[str, int] = {}
        self._leases: dict[int, _Lease] = {}
        self._next_lease = 0x1000
        self._revision = 1
        self._compacted = 0
        self._history: list[WatchEvent] = []
        self._changed = asyncio.Event()
        self._down = False
        self._closed = False

    # test controls ----------------------------------------------------------------------

    @property
    def revision(self) -> int:
        return self._revision

    def fail(self, down: bool = True) -> None:
        """Simulate an outage: while down, every call and every open watch raises."""
        self._down = down
        self._notify()

    def expire(self) -> None:
        """Drop every lease whose deadline has passed on the clock, with its keys."""
        now = self._now()
        for lease_id in [i for i, lease in self._leases.items() if lease.deadline <= now]:
            self._drop_lease(lease_id)

    def compact(self, revision: int) -> None:
        """Forget history before `revision`; watches starting earlier raise `Compacted`."""
        self._check()
        if revision > self._revision:
            raise ValueError(f"cannot compact future revision {revision} > {self._revision}")
        self._compacted = max(self._compacted, revision)
        cut = bisect.bisect_left(self._history, revision, key=lambda e: e.mod_revision)
        del self._history[:cut]
        self._notify()

    # reads ------------------------------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        self._check()
        return self._data.get(key)

    async def get_prefix(self, prefix: str) -> Listing:
        self._check()
        keys = sorted((k for k in self._data if k.startswith(prefix)), key=str.encode)
        return Listing(items=tuple(self._data[k] for k in keys), revision=self._revision)

    async def get_prefixes(self, prefixes: Sequence[str]) -> list[Listing]:
        return [await self.get_prefix(p) for p in prefixes]

    async def get_keys(self, prefix: str) -> Listing:
        found = await self.get_prefix(prefix)
        return Listing(tuple(replace(kv, value="") for kv in found.items), found.revision)

    async def count(self, prefix: str) -> int:
        self._check()
        return sum(1 for k in self._data if k.startswith(prefix))

    # writes -----------------------------------------------------------------------------

    async def put(self, key: str, value: str, lease: int = 0) -> int:
        result = await self.txn((), (Put(key, value, lease),))
        return result.revision

    async def delete(self, key: str) -> bool:
        self._check()
        existed = key in self._data
        await self.txn((), (Delete(key),))
        return existed

    async def txn(
        self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        self._check()
        ok = all(self._holds(c) for c in compares)
        ops = success if ok else failure
        self._check_leases(ops)
        self._apply(ops)
        return TxnResult(succeeded=ok, revision=self._revision)

    # leases -----------------------------------------------------------------------------

    async def grant(self, ttl: int) -> int:
        self._check()
        self._next_lease += 1
        self._leases[self._next_lease] = _Lease(ttl=ttl, deadline=self._now() + ttl)
        return self._next_lease

    async def refresh(self, lease: int, timeout: float | None = None) -> int:
        self._check()
        found = self._leases.get(lease)
        if found is None:
            return 0
        found.deadline = self._now() + found.ttl
        return found.ttl

    async def revoke(self, lease: int) -> None:
        self._check()
        if lease in self._leases:
            self._drop_lease(lease)

    # watches ----------------------------------------------------------------------------

    def watch_prefix(self, prefix: str, start_revision: int) -> AsyncIterator[WatchEvent]:
        return self._watch(prefix, start_revision)

    async def _watch(self, prefix: str, start_revision: int) -> AsyncIterator[WatchEvent]:
        self._check()
        next_rev = start_revision if start_revision > 0 else self._revision + 1
        while True:
            self._check()
            if next_rev < self._compacted:
                raise Compacted(self._compacted)
            events, seen = self._events_since(next_rev, prefix), self._revision
            for event in events:
                yield event
            next_rev = max(next_rev, seen + 1)
            await self._wait_change(seen)

    def _events_since(self, revision: int, prefix: str) -> list[WatchEvent]:
        start = bisect.bisect_left(self._history, revision, key=lambda e: e.mod_revision)
        return [e for e in self._history[start:] if e.key.startswith(prefix)]

    async def _wait_change(self, seen: int) -> None:
        """Sleep until the store moves past `seen`, the outage switch flips, or a lease is due."""
        while self._revision == seen and not self._down and not self._closed:
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._next_deadline_in()):
                    await changed.wait()
            self.expire()

    def _next_deadline_in(self) -> float | None:
        if not self._leases:
            return None
        soonest = min(lease.deadline for lease in self._leases.values())
        return max(soonest - self._now(), 0.005)

    async def close(self) -> None:
        self._closed = True
        self._notify()

    # internals --------------------------------------------------------------------------

    def _check(self) -> None:
        if self._closed:
            raise RegistryUnavailable("memory registry is closed")
        if self._down:
            raise RegistryUnavailable("memory registry is down (simulated outage)")
        self.expire()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _holds(self, c: Compare) -> bool:
        kv = self._data.get(c.key)
        if c.target == "value":
            return kv is not None and _OPS[c.op](kv.value, c.value)
        actual = {
            "create": kv.create_revision if kv else 0,
            "mod": kv.mod_revision if kv else 0,
            "version": self._versions.get(c.key, 0),
        }[c.target]
        return _OPS[c.op](actual, c.value)

    def _check_leases(self, ops: Sequence[Op]) -> None:
        for op in ops:
            if isinstance(op, Put) and op.lease and op.lease not in self._leases:
                raise NotFound(f"lease {op.lease:x} not found")

    def _apply(self, ops: Sequence[Op]) -> None:
        """Apply ops atomically at one new revision (none if nothing changes)."""
        effective = [op for op in ops if isinstance(op, Put) or op.key in self._data]
        if not effective:
            return
        self._revision += 1
        for op in effective:
            if isinstance(op, Put):
                self._store(op)
            else:
                self._remove(op.key)
        self._notify()

    def _store(self, op: Put) -> None:
        old = self._data.get(op.key)
        if old is not None and old.lease in self._leases:
            self._leases[old.lease].keys.discard(op.key)
        if op.lease:
            self._leases[op.lease].keys.add(op.key)
        created = old.create_revision if old else self._revision
        self._data[op.key] = KeyValue(op.key, op.value, created, self._revision, op.lease)
        self._versions[op.key] = self._versions.get(op.key, 0) + 1
        self._history.append(WatchEvent("put", op.key, op.value, self._revision))

    def _remove(self, key: str) -> None:
        old = self._data.pop(key)
        self._versions.pop(key, None)
        if old.lease in self._leases:
            self._leases[old.lease].keys.discard(key)
        self._history.append(WatchEvent("delete", key, "", self._revision))

    def _drop_lease(self, lease_id: int) -> None:
        lease = self._leases.pop(lease_id)
        self._apply([Delete(k) for k in sorted(lease.keys)])
