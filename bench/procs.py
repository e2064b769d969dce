"""The engine benchmark's child processes: the engine under test, and an API server.

Each runs in its own process (spawned, so no state is inherited) so that its CPU time is its
own: the parent's polling and checking never count as engine work. The engine child wraps its
KV in `CountingKV`, which adds every etcd request it makes to counters shared with the parent.
"""

from __future__ import annotations

import asyncio
import ctypes
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from typing import Any

from fleetd.registry.kv import KV, Compare, KeyValue, Listing, Op, TxnResult, WatchEvent

COUNTERS = ("txns", "txn_ops", "requests", "reads", "watches")


@dataclass
class Shared:
    """Values the parent reads: one counter per name in COUNTERS, and when the engine began."""

    counters: Any  # multiprocessing Array of c_longlong, one per COUNTERS entry
    started: Synchronized  # type: ignore[type-arg]  # monotonic seconds at engine start (double)

    def add(self, *names: str, amount: int = 1) -> None:
        for name in names:
            self.counters[COUNTERS.index(name)] += amount

    def read(self) -> dict[str, int]:
        return dict(zip(COUNTERS, list(self.counters), strict=True))


def new_shared(ctx: Any) -> Shared:
    return Shared(ctx.Array(ctypes.c_longlong, len(COUNTERS), lock=False),
                  ctx.Value(ctypes.c_double, 0.0, lock=False))


class CountingKV:
    """A KV that counts the requests it forwards (a watch stream counts once, when opened)."""

    def __init__(self, inner: KV, shared: Shared) -> None:
        self.inner = inner
        self.shared = shared

    async def get(self, key: str) -> KeyValue | None:
        self.shared.add("requests", "reads")
        return await self.inner.get(key)

    async def get_prefix(self, prefix: str) -> Listing:
        self.shared.add("requests", "reads")
        return await self.inner.get_prefix(prefix)

    async def get_prefixes(self, prefixes: Sequence[str]) -> list[Listing]:
        self.shared.add("requests", "reads")
        return await self.inner.get_prefixes(prefixes)

    async def count(self, prefix: str) -> int:
        self.shared.add("requests", "reads")
        return await self.inner.count(prefix)

    async def put(self, key: str, value: str, lease: int = 0) -> int:
        self.shared.add("requests")
        return await self.inner.put(key, value, lease)

    async def delete(self, key: str) -> bool:
        self.shared.add("requests")
        return await self.inner.delete(key)

    async def txn(self, compares: Sequence[Compare], success: Sequence[Op],
                  failure: Sequence[Op] = ()) -> TxnResult:
        self.shared.add("requests", "txns")
        self.shared.add("txn_ops", amount=len(success))
        return await self.inner.txn(compares, success, failure)

    async def grant(self, ttl: int) -> int:
        self.shared.add("requests")
        return await self.inner.grant(ttl)

    async def refresh(self, lease: int, timeout: float | None = None) -> int:
        self.shared.add("requests")
        return await self.inner.refresh(lease, timeout)

    async def revoke(self, lease: int) -> None:
        self.shared.add("requests")
        await self.inner.revoke(lease)

    def watch_prefix(self, prefix: str, start_revision: int) -> AsyncIterator[WatchEvent]:
        self.shared.add("requests", "watches")
        return self.inner.watch_prefix(prefix, start_revision)

    async def close(self) -> None:
        await self.inner.close()


class _Lease:
    """The engine's lease holder (what the Heart is in fleetd), kept alive by `keep`."""

    def __init__(self) -> None:
        self.lease = 0

    async def keep(self, kv: KV, ttl: int) -> None:
        while True:
            await asyncio.sleep(ttl / 3)
            await kv.refresh(self.lease)


def engine_main(endpoints: list[str], prefix: str, policy: str, shared: Shared, go: Any,
                log_path: str) -> None:
    """Child process: wait for `go`, note the time, then lead and schedule until killed.
    It logs as fleetd does by default (info), into `log_path`."""
    import sys

    from fleetd.engine.reconciler import Engine
    from fleetd.logs import configure
    from fleetd.registry.etcd import EtcdKV
    from fleetd.registry.keys import Keys
    from fleetd.registry.store import Registry

    sys.stderr = open(log_path, "a", buffering=1)  # noqa: SIM115 - the process's own stderr
    configure(0)
    go.wait()
    shared.started.value = time.monotonic()

    async def run() -> None:
        kv = CountingKV(EtcdKV(endpoints, request_timeout=30.0), shared)
        holder = _Lease()
        holder.lease = await kv.grant(60)  # as fleetd's heart: registered before the engine runs
        engine = Engine(Registry(kv, Keys(prefix)), "bench-engine", holder, 30.0, policy)
        async with asyncio.TaskGroup() as group:
            group.create_task(holder.keep(kv, 60))
            group.create_task(engine.run())

    asyncio.run(run())


def api_main(endpoints: list[str], prefix: str, socket_path: str, ready: Any) -> None:
    """Child process: serve API v1 on `socket_path` until killed."""
    from fleetd import __version__
    from fleetd.api.http import make_app, serve
    from fleetd.registry.etcd import EtcdKV
    from fleetd.registry.keys import Keys
    from fleetd.registry.store import Registry

    async def run() -> None:
        registry = Registry(EtcdKV(endpoints, request_timeout=30.0), Keys(prefix))
        await serve(make_app(registry, __version__), socket_path)
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(run())
