"""What this host holds of fleet's units, as the agent last left it: shared by agent and publisher.

The agent is the only writer: it rescans the units directory at the start of a pass and
records each load, unload, start and stop as it happens. The publisher only reads it, to know
which units are fleet's, which fleet state ("launched" or "loaded") each has reached, which
ports each publishes (`[X-Fleet] Publish=`) and which ask to be placed elsewhere when they
fail (`RescheduleOnFailure=true`), both set by the agent from the desired units.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from fleetd.model.endpoints import Endpoint
from fleetd.model.states import TargetState


@dataclass
class HostUnits:
    """Fleet's units on this host: unit file hashes, and the units this agent has started."""

    files: dict[str, str] = field(default_factory=dict)
    started: set[str] = field(default_factory=set)
    published: dict[str, tuple[Endpoint, ...]] = field(default_factory=dict)
    reschedule: set[str] = field(default_factory=set)  # units with RescheduleOnFailure=true

    def rescanned(self, files: Mapping[str, str]) -> None:
        """The units directory as read just now; units whose file is gone are not started."""
        self.files = dict(files)
        self.started &= set(self.files)

    def loaded(self, name: str, digest: str) -> None:
        self.files[name] = digest

    def unloaded(self, name: str) -> None:
        self.files.pop(name, None)
        self.started.discard(name)

    def fleet_state(self, name: str) -> TargetState:
        return TargetState.LAUNCHED if name in self.started else TargetState.LOADED
