"""A machine in the cluster, as it announces itself on its presence lease."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Machine:
    """One live fleetd host: its machine id, public address and metadata."""

    id: str
    ip: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    version: str = ""
    disable_engine: bool = False

    @property
    def short_id(self) -> str:
        return self.id[:8]
