"""Keeping this machine's maintenance lock: the lease of the slot it holds stays alive.

The lock (fleetd.registry.maintenance) sits on a lease of its own, not on the machine's
presence lease, so that it survives the reboot it was taken for. While fleetd runs it renews
the lease of any slot its machine holds, every `interval` seconds (a quarter of the lock's TTL);
after a reboot the new fleetd finds the slot and goes on renewing it. A host that never comes
back stops renewing, and the lock is free once the TTL has run out.
"""

from __future__ import annotations

import asyncio

from fleetd.errors import RegistryUnavailable
from fleetd.logs import get_logger
from fleetd.registry.maintenance import holders
from fleetd.registry.store import Registry


class LockKeeper:
    """Renews the lease of the maintenance-lock slot `machine_id` holds, if any."""

    def __init__(self, registry: Registry, machine_id: str, ttl: float) -> None:
        self.registry = registry
        self.machine_id = machine_id
        self.interval = max(1.0, ttl / 4)
        self.log = get_logger("maintenance", machine=machine_id[:8])

    async def run(self) -> None:
        while True:
            try:
                await self.keep()
            except RegistryUnavailable as exc:
                self.log.warning("maintenance lock not renewed; will retry", error=str(exc))
            await asyncio.sleep(self.interval)

    async def keep(self) -> bool:
        """Renew the slot this machine holds; True if it holds one."""
        mine = [h for h in await holders(self.registry) if h.machine == self.machine_id]
        for holder in mine:
            if holder.lease and await self.registry.kv.refresh(holder.lease) <= 0:
                self.log.warning("maintenance lock lapsed (its lease expired)", slot=holder.slot)
        return bool(mine)
