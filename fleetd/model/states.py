"""Unit states: the desired state a user sets, and what systemd reports on a machine."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class TargetState(StrEnum):
    """Desired (and derived current) fleet state of a unit, in fleet's order."""

    INACTIVE = "inactive"
    LOADED = "loaded"
    LAUNCHED = "launched"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {TargetState.INACTIVE: 0, TargetState.LOADED: 1, TargetState.LAUNCHED: 2}


@dataclass(frozen=True, slots=True)
class SystemdState:
    """LoadState / ActiveState / SubState of one unit as systemd reports them."""

    load: str
    active: str
    sub: str


@dataclass(frozen=True, slots=True)
class UnitState:
    """What one machine's agent reports for one unit (stored on that machine's lease).

    `state` is the fleet state the agent has reached: loaded (file linked) or launched
    (start issued); `systemd` is systemd's own view of the unit. `reason` says why the agent
    refused the unit without asking systemd (then `systemd` is REFUSED); "" otherwise.
    """

    name: str
    machine: str
    hash: str
    state: TargetState
    systemd: SystemdState
    reason: str = ""


#: What an agent reports for a unit it refused to hand to systemd (e.g. an invalid name).
REFUSED = SystemdState(load="error", active="failed", sub="failed")
