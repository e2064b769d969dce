"""A machine in the cluster, as it announces itself on its presence lease."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from fleetd.model.resources import Resources


@dataclass(frozen=True, slots=True)
class Machine:
    """One live fleetd host: its machine id, public address, metadata and capacity.

    A zero capacity dimension means "unknown": the scheduler treats it as unlimited.
    """

    id: str
    ip: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    version: str = ""
    disable_engine: bool = False
    capacity: Resources = Resources()

    @property
    def short_id(self) -> str:
        return self.id[:8]
