"""The scheduler's input and output records (pure data): the `Snapshot` it reads and the
`Decision` it returns (evictions, placements, updates, pending units)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from fleetd.model.lifecycle import Move
from fleetd.model.machine import Machine
from fleetd.model.requirements import Requirements
from fleetd.model.states import TargetState
from fleetd.model.unit import Assignment, Unit

BINPACK, SPREAD = "binpack", "spread"


@dataclass(frozen=True, slots=True)
class UnitSpec:
    """A unit with its parsed requirements."""

    unit: Unit
    requirements: Requirements

    @property
    def active(self) -> bool:
        """The unit should be placed somewhere (desired state loaded or launched)."""
        return self.unit.desired in (TargetState.LOADED, TargetState.LAUNCHED)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the leader knows: units by name, live machines by id, assignments by unit name.

    `policy` is the cluster-wide default (binpack or spread); a unit's `Policy=` overrides it.
    `machine_states`: machines an operator cordoned or is draining (`fleetd.model.lifecycle`);
    `moves`: units an operator asked to move, by name. From the failure records
    (`fleetd.engine.failures`): `failed`, the machines each unit's current file failed on
    (barred for it); `reschedule_now`, the units to take off the machine that failed them;
    `gave_up`, the units that stay failed, with why. `drain_slots`: how many units may leave
    draining machines in this pass (None: all; the engine holds back the next batch until the
    last one runs, `fleetd.engine.drain_flight`).
    """

    units: Mapping[str, UnitSpec]
    machines: Mapping[str, Machine]
    assignments: Mapping[str, Assignment]
    policy: str = BINPACK
    machine_states: Mapping[str, str] = field(default_factory=dict)
    moves: Mapping[str, Move] = field(default_factory=dict)
    failed: Mapping[str, frozenset[str]] = field(default_factory=dict)
    reschedule_now: frozenset[str] = frozenset()
    gave_up: Mapping[str, str] = field(default_factory=dict)
    drain_slots: int | None = None  # how many more units may leave draining machines now
    drain_kept: frozenset[str] = frozenset()  # units found unable to leave (they take no slot)


@dataclass(frozen=True, slots=True)
class Evict:
    """`soft`: the unit leaves only to move (its machine is draining, an operator moves it, it
    failed there); if no other machine can take it, it stays where it is. `drain`: it leaves
    a draining machine."""

    unit: str
    machine: str
    reason: str
    soft: bool = False
    drain: bool = False


@dataclass(frozen=True, slots=True)
class Place:
    assignment: Assignment
    reason: str


@dataclass(frozen=True, slots=True)
class Update:
    """Same machine, new file hash or desired state."""

    assignment: Assignment
    reason: str


@dataclass(frozen=True, slots=True)
class Pending:
    """A unit that should run but cannot be placed now; retried on the next pass."""

    unit: str
    reason: str


@dataclass(frozen=True, slots=True)
class Decision:
    """Evictions first, then updates and placements; pending units are information only.
    `moves_done`: move requests to delete (the unit moved, could not, or is gone)."""

    evictions: tuple[Evict, ...] = ()
    placements: tuple[Place, ...] = ()
    updates: tuple[Update, ...] = ()
    pending: tuple[Pending, ...] = ()
    moves_done: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        """True when there is nothing to write (pending units may remain: nothing to do for them)."""
        return not (self.evictions or self.placements or self.updates or self.moves_done)
