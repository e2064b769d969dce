"""This machine's dynamic metadata: the overlay over its config metadata, kept current by a watch.

Owns the published metadata of the local machine: config metadata overlaid by the map that
PATCH /machines stored under `<prefix>metadata/<machine>` (see `fleetd.model.metapatch`). The
heart asks it for the record before every registration (so a restarted fleetd registers with
its dynamic metadata at once), and its watch re-puts the machine record when the map changes;
the engine then sees the new metadata and places or evicts units by MachineMetadata. The agent
is told too, for global units. A reload (SIGHUP) hands it a new config machine
(`reconfigure`: new config metadata or capacity), published the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from fleetd.agent.heart import Heart
from fleetd.agent.reconciler import Agent
from fleetd.logs import get_logger
from fleetd.model.machine import Machine
from fleetd.model.metapatch import overlay
from fleetd.registry import metadata
from fleetd.registry.kv import WatchEvent
from fleetd.registry.store import Registry
from fleetd.registry.watch import list_then_follow

OnChange = Callable[[Machine], None]


class MetadataOverlay:
    """Publishes `config` with its dynamic metadata through `heart`; tells `on_change` of edits."""

    def __init__(self, registry: Registry, heart: Heart, on_change: OnChange) -> None:
        self.registry = registry
        self.heart = heart
        self.config = heart.machine
        self.on_change = on_change
        self.key = registry.keys.machine_metadata(self.config.id)
        self._written: Machine | None = None  # the record this overlay last put in etcd
        self.log = get_logger("metadata", machine=self.config.short_id)

    def machine_with(self, dynamic: dict[str, str]) -> Machine:
        return dataclasses.replace(self.config, metadata=overlay(self.config.metadata, dynamic))

    async def describe(self) -> Machine:
        """The record to register: config plus the dynamic map read now."""
        machine = self.machine_with(await metadata.read(self.registry, self.config.id))
        self.on_change(machine)
        self._written = machine  # the heart registers it (and retries until it is in)
        return machine

    async def reconfigure(self, config: Machine) -> None:
        """The machine's own config changed (a reload): publish it with the dynamic map."""
        self.config = config
        await self._publish(await metadata.read(self.registry, config.id))

    async def run(self) -> None:
        await list_then_follow(self.registry.kv, self.key, self._on_event, self._relist,
                               on_error=self._trouble)

    async def _relist(self) -> int:
        listing = await self.registry.kv.get_prefix(self.key)
        found = next((kv for kv in listing.items if kv.key == self.key), None)
        await self._publish(metadata.read_record(found))
        return listing.revision

    async def _on_event(self, event: WatchEvent) -> None:
        if event.key == self.key:
            await self._publish(metadata.decode(event.value) if event.kind == "put" else {})

    async def _publish(self, dynamic: dict[str, str]) -> None:
        """Put the record with `dynamic` overlaid, unless it is what is registered already.

        Compared with what this overlay last wrote, not with `heart.machine`: when the put fails
        the watch delivers the same event again, and the retry must still write it.
        """
        machine = self.machine_with(dynamic)
        if machine == self._written:
            return
        if machine != self.heart.machine:
            self.heart.machine = machine
            self.on_change(machine)
            self.log.info("machine metadata changed", metadata=dict(machine.metadata))
        if self.heart.lease:
            await self.registry.register_machine(machine, self.heart.lease)
            self._written = machine

    def _trouble(self, exc: Exception) -> None:
        self.log.warning("metadata watch interrupted", error=str(exc))


def attach(registry: Registry, heart: Heart, agent: Agent) -> MetadataOverlay:
    """Wire the overlay into `heart` (consulted before registering, watching alongside it) and
    keep `agent`'s view of this machine current."""

    def tell_agent(machine: Machine) -> None:
        agent.machine = machine
        agent.wakeup.poke()

    overlay_ = MetadataOverlay(registry, heart, tell_agent)
    heart.describe_with(overlay_.describe)
    heart.run_alongside(overlay_.run)
    return overlay_
