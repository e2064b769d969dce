"""Machine presence: the machine key on a lease, kept alive by refresh; re-registered on loss.

Liveness is lease keep-alive only (no periodic puts), every `Liveness.keepalive` seconds. If
etcd says the lease has expired (refresh returns TTL <= 0, e.g. after a network cut), a new
lease is granted, the machine key is put again and listeners are told so they can re-put their
own lease-bound keys.

The heart also keeps the fencing clock: `confirmed_at` is when the last successful keep-alive
was sent. Once `fence_after` seconds pass without one, the machine is `fenced` (its agent
stops AtMostOnce units); the next success lifts that. `lapsed_at` keeps the `confirmed_at`
of a lease that expired, so the agent knows how long to keep such units down after rejoining.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fleetd.errors import RegistryUnavailable
from fleetd.logs import get_logger
from fleetd.loop import spawn
from fleetd.model.liveness import Liveness
from fleetd.model.machine import Machine
from fleetd.registry.store import Registry

Listener = Callable[[int], Awaitable[None]]
RETRY_SECONDS = 0.5


class Heart:
    """Owns this machine's lease. `lease` is 0 until the first registration succeeds."""

    def __init__(self, registry: Registry, machine: Machine, timing: Liveness) -> None:
        self.registry = registry
        self.machine = machine
        self.timing = timing
        self.ttl = timing.ttl
        self.lease = 0
        self.registered = asyncio.Event()
        self.confirmed_at: float | None = None
        self.lapsed_at: float | None = None
        self.fenced = False
        self._listeners: list[Listener] = []
        self._fence_listeners: list[Callable[[], None]] = []
        self._describers: list[Callable[[], Awaitable[Machine]]] = []
        self._companions: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self.log = get_logger("heart", machine=machine.short_id)

    def on_new_lease(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def on_fence_change(self, listener: Callable[[], None]) -> None:
        self._fence_listeners.append(listener)

    def describe_with(self, describer: Callable[[], Awaitable[Machine]]) -> None:
        """Ask `describer` for the machine record before each registration."""
        self._describers.append(describer)

    def run_alongside(self, task: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `task` for as long as the heart runs (a crash stops the heart)."""
        self._companions.append(task)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            spawn(group, self._beat_forever(), "heart-beat")
            spawn(group, self._fence_clock(), "heart-fence-clock")
            for companion in self._companions:
                spawn(group, companion(), "heart-companion")

    async def _beat_forever(self) -> None:
        """Keep-alive every `keepalive` s; after a failure, try again at once (the etcd client
        has moved to another member by then), then every RETRY_SECONDS."""
        failures = 0
        while True:
            try:
                await self._beat()
                failures = 0
            except RegistryUnavailable as exc:
                failures += 1
                self.log.warning("etcd unreachable; presence not renewed", error=str(exc))
            await asyncio.sleep(self.timing.keepalive if self.lease and not failures
                                else 0 if failures == 1 else RETRY_SECONDS)

    async def _beat(self) -> None:
        sent = asyncio.get_running_loop().time()
        # a keep-alive answers in milliseconds; waiting longer only delays the move elsewhere
        if self.lease and await self.registry.kv.refresh(self.lease, timeout=self.timing.keepalive) > 0:
            self._confirmed(sent)
            return
        if self.lease:
            self.log.warning("lease expired; registering again", lease=self.lease)
            self.lapsed_at = self.confirmed_at
        await self._register()
        self._confirmed(sent)

    def _confirmed(self, sent: float) -> None:
        self.confirmed_at = sent
        if self.fenced:
            self.fenced = False
            self.log.warning("lease confirmed again; fencing lifted")
            self._tell_fence_change()

    async def _fence_clock(self) -> None:
        """Declare the machine fenced once `fence_after` passes without a keep-alive."""
        loop = asyncio.get_running_loop()
        while True:
            deadline = (self.confirmed_at or loop.time()) + self.timing.fence_after
            await asyncio.sleep(max(0.05, deadline - loop.time()))
            if self.confirmed_at is not None and not self.fenced and loop.time() >= \
                    self.confirmed_at + self.timing.fence_after:
                self.fenced = True
                self.log.error("no keep-alive for fence_after seconds: fencing (AtMostOnce units stop)",
                               fence_after=self.timing.fence_after)
                self._tell_fence_change()

    def _tell_fence_change(self) -> None:
        for listener in self._fence_listeners:
            listener()

    async def _register(self) -> None:
        for describe in self._describers:
            self.machine = await describe()
        lease = await self.registry.kv.grant(self.ttl)
        await self.registry.register_machine(self.machine, lease)
        self.lease = lease
        self.registered.set()
        self.log.info("machine registered", ip=self.machine.ip, ttl=self.ttl,
                      metadata=dict(self.machine.metadata))
        for listener in self._listeners:
            await listener(lease)

    async def revoke(self) -> None:
        if self.lease:
            await self.registry.kv.revoke(self.lease)
            self.lease = 0
