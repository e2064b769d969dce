"""The port the agent drives systemd through.

Implementations: `fleetd.systemd.dbus.DbusUnitManager` (the host's real systemd over the
system bus) and `fleetd.systemd.memory.FakeUnitManager` (tier-2 tests). Every method may
raise `fleetd.errors.UnitManagerError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from fleetd.model.states import SystemdState


@dataclass(frozen=True, slots=True)
class Activity:
    """A unit's ActiveState and SubState, as a change signal carries them."""

    active: str
    sub: str


OnChange = Callable[[str, Activity | None], None]


class UnitManager(Protocol):
    async def connect(self) -> None:
        """Open the bus, subscribe to signals. Called once before anything else."""
        ...

    async def close(self) -> None: ...

    def local_units(self) -> Mapping[str, str]:
        """Unit files fleet has written to its units directory: name -> sha256 of the text."""
        ...

    async def load(self, name: str, text: str) -> None:
        """Write the unit file into the units directory and link it (runtime).

        Enables it at runtime when it has an [Install] section. Does not reload.
        """
        ...

    async def unload(self, name: str) -> None:
        """Stop the unit, then unlink it, reset its failed state and delete the file."""
        ...

    async def reload(self) -> None:
        """systemd daemon-reload."""
        ...

    async def start(self, name: str) -> str:
        """StartUnit(name, "replace"); return the job result ("done", "failed", ...)."""
        ...

    async def stop(self, name: str) -> str:
        """StopUnit(name, "replace"); return the job result."""
        ...

    async def states(self, names: Iterable[str]) -> Mapping[str, SystemdState]:
        """Current load/active/sub state of each named unit (units systemd lacks are omitted)."""
        ...

    def on_change(self, callback: OnChange) -> None:
        """Call `callback(unit_name, activity)` whenever systemd signals a change to a unit.

        `activity` is the unit's new ActiveState/SubState when the signal carries them, else
        None (ask `states` then).
        """
        ...
