"""Unit state publishing: this host's view of its fleet units, written to etcd on change.

Each state lives at states/<unit>/<machine> on the machine's lease, so it vanishes with the
machine. Changes are coalesced (one pass per ~100 ms window); only records whose content
changed are written; records for units no longer on this host are deleted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fleetd.errors import RegistryUnavailable, UnitManagerError
from fleetd.logs import get_logger
from fleetd.loop import Wakeup
from fleetd.model.states import TargetState, UnitState
from fleetd.registry.store import Registry
from fleetd.systemd.base import UnitManager

COALESCE_SECONDS = 0.1
RESYNC_SECONDS = 30.0


class Publisher:
    def __init__(self, registry: Registry, systemd: UnitManager, machine_id: str,
                 lease: Callable[[], int]) -> None:
        self.registry = registry
        self.systemd = systemd
        self.machine_id = machine_id
        self.lease = lease
        self.fleet_state: Callable[[str], TargetState] = lambda name: TargetState.LOADED
        self.wakeup = Wakeup()
        self._published: dict[str, UnitState] = {}
        self.log = get_logger("publisher", machine=machine_id[:8])

    def poke(self, *_: object) -> None:
        self.wakeup.poke()

    async def republish_all(self, lease: int) -> None:
        """A new lease took our old records with it: write everything again."""
        self._published.clear()
        self.poke()

    async def run(self) -> None:
        while True:
            await self.wakeup.wait(RESYNC_SECONDS)
            await asyncio.sleep(COALESCE_SECONDS)
            try:
                await self.publish()
            except (RegistryUnavailable, UnitManagerError) as exc:
                self.log.warning("state publishing failed; will retry", error=str(exc))
                self._published.clear()
                await asyncio.sleep(1)
                self.poke()

    async def publish(self) -> None:
        lease = self.lease()
        if not lease:
            return
        local = self.systemd.local_units()
        states = await self.systemd.states(local)
        fresh = {name: UnitState(name=name, machine=self.machine_id, hash=digest,
                                 state=self.fleet_state(name), systemd=states[name])
                 for name, digest in local.items() if name in states}
        for name, state in fresh.items():
            if self._published.get(name) != state:
                await self.registry.put_state(state, lease)
                self._published[name] = state
        for name in set(self._published) - set(fresh):
            await self.registry.delete_state(name, self.machine_id)
            del self._published[name]
