"""Machine presence: the machine key on a lease, kept alive by refresh; re-registered on loss.

Liveness is lease keep-alive only (no periodic puts). If etcd says the lease has expired
(refresh returns TTL <= 0, e.g. after a network cut), a new lease is granted, the machine
key is put again and listeners are told so they can re-put their own lease-bound keys.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable

from fleetd.errors import RegistryUnavailable
from fleetd.logs import get_logger
from fleetd.model.machine import Machine
from fleetd.registry.store import Registry

Listener = Callable[[int], Awaitable[None]]


class Heart:
    """Owns this machine's lease. `lease` is 0 until the first registration succeeds."""

    def __init__(self, registry: Registry, machine: Machine, ttl: float) -> None:
        self.registry = registry
        self.machine = machine
        self.ttl = max(1, math.ceil(ttl))
        self.lease = 0
        self.registered = asyncio.Event()
        self._listeners: list[Listener] = []
        self.log = get_logger("heart", machine=machine.short_id)

    def on_new_lease(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def run(self) -> None:
        while True:
            try:
                await self._beat()
            except RegistryUnavailable as exc:
                self.log.warning("etcd unreachable; presence not renewed", error=str(exc))
            await asyncio.sleep(self.ttl / 3 if self.lease else 0.5)

    async def _beat(self) -> None:
        if self.lease and await self.registry.kv.refresh(self.lease) > 0:
            return
        if self.lease:
            self.log.warning("lease expired; registering again", lease=self.lease)
        await self._register()

    async def _register(self) -> None:
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
