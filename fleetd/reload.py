"""`systemctl reload fleet` (SIGHUP): read fleet.conf and the FLEET_* environment again.

Metadata, capacity (capacity_cpu, capacity_memory) and the log level (verbosity) take effect at
once: the machine record is put again with the new metadata and capacity (the engine then moves
units whose MachineMetadata no longer holds, and sizes placements by the new capacity), and
nothing on the host stops. A change to any other key needs a restart: it is logged with the
keys and ignored, and so is a file that does not load (the running configuration is kept).
`fleetd.config.reload_changes` decides; this module reads, logs and applies.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

from fleetd import logs
from fleetd.agent.capacity import machine_capacity
from fleetd.agent.metadata import MetadataOverlay
from fleetd.config import FleetConfig, load_config, reload_changes
from fleetd.errors import ConfigError, FleetError
from fleetd.model.machine import Machine

Loader = Callable[[], tuple[FleetConfig, list[str]]]


class Reloader:
    """Applies reloads to one running fleetd; `request` (the signal handler) asks for one."""

    def __init__(self, running: FleetConfig, overlay: MetadataOverlay, path: str | None = None,
                 loader: Loader | None = None) -> None:
        self.running = running
        self.overlay = overlay
        self.load = loader or (lambda: load_config(path))
        self.wanted = asyncio.Event()
        self.log = logs.get_logger("reload")

    def request(self) -> None:
        self.wanted.set()

    async def run(self) -> None:
        while True:
            await self.wanted.wait()
            self.wanted.clear()
            await self.reload()

    async def reload(self) -> list[str]:
        """Read the configuration again and apply what can be; the keys applied."""
        try:
            new, _ = self.load()
        except ConfigError as exc:
            self.log.error("reload refused: the configuration does not load; keeping the running "
                           "one", error=str(exc))
            return []
        merged, applied, restart = reload_changes(self.running, new)
        if restart:
            self.log.warning("reload: these changes need a restart (systemctl restart fleet); "
                             "ignored until then", keys=restart)
        if "verbosity" in applied:
            logs.set_verbosity(merged.verbosity)
        try:
            if {"metadata", "capacity_cpu", "capacity_memory"} & set(applied):
                await self.overlay.reconfigure(self._machine(merged))
        except FleetError as exc:
            self.log.error("reload: publishing the machine failed; will retry on the next reload",
                           error=str(exc))
            return []
        self.running = merged
        self.log.info("configuration reloaded", applied=applied or "nothing changed")
        return applied

    def _machine(self, cfg: FleetConfig) -> Machine:
        return dataclasses.replace(self.overlay.config, metadata=dict(cfg.metadata),
                                   capacity=machine_capacity(cfg.capacity_cpu, cfg.capacity_memory))
