"""The scheduler: a pure function from a cluster snapshot to a plan of placement changes.

Owns which assignments must go (unit gone or inactive, machine gone, requirements no longer met),
which must be updated in place (new file hash or desired state), and where unassigned units go
(least-loaded eligible machine by unit count, ties by machine id; fleet's "spread"). Every action
carries a reason in words. Deterministic: no clock, no randomness, no dependence on dict order.
Global units are never placed here: each agent decides for itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from fleetd.model.machine import Machine
from fleetd.model.names import parse_name
from fleetd.model.requirements import (
    Requirements,
    conflicts,
    describe_metadata,
    machine_id_matches,
    metadata_matches,
)
from fleetd.model.states import TargetState
from fleetd.model.unit import Assignment, Unit

_ACTIVE = (TargetState.LOADED, TargetState.LAUNCHED)


@dataclass(frozen=True, slots=True)
class UnitSpec:
    """A unit with its parsed requirements."""

    unit: Unit
    requirements: Requirements


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the leader knows: units by name, live machines by id, assignments by unit name."""

    units: Mapping[str, UnitSpec]
    machines: Mapping[str, Machine]
    assignments: Mapping[str, Assignment]


@dataclass(frozen=True, slots=True)
class Evict:
    unit: str
    machine: str
    reason: str


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
class Plan:
    """Evictions first, then updates and placements; pending units are information only."""

    evictions: tuple[Evict, ...] = ()
    placements: tuple[Place, ...] = ()
    updates: tuple[Update, ...] = ()
    pending: tuple[Pending, ...] = ()

    @property
    def is_empty(self) -> bool:
        """True when there is nothing to write (pending units may remain: nothing to do for them)."""
        return not (self.evictions or self.placements or self.updates)


class _Board:
    """Working copy of who runs where, updated as the plan is built (local to one call)."""

    def __init__(self, snapshot: Snapshot, kept: Iterable[str]) -> None:
        self.snapshot = snapshot
        self.where: dict[str, str] = {}
        self.on: dict[str, list[str]] = {m: [] for m in snapshot.machines}
        for name in kept:
            self.put(name, snapshot.assignments[name].machine)

    def put(self, unit: str, machine: str) -> None:
        self.where[unit] = machine
        self.on[machine].append(unit)

    def remove(self, unit: str) -> None:
        self.on[self.where.pop(unit)].remove(unit)

    def load(self, machine: str) -> int:
        return len(self.on[machine])

    def conflicting(self, name: str, req: Requirements, machine: str) -> list[str]:
        """Units on `machine` that conflict with unit `name`, either direction."""
        units = self.snapshot.units
        return [other for other in self.on[machine] if conflicts(name, req, other, units[other].requirements)]


def schedule(snapshot: Snapshot) -> Plan:
    """Decide evictions, in-place updates and placements for one reconcile pass."""
    kept, evictions = _evictions(snapshot)
    board = _Board(snapshot, kept)
    placements, pending = _place_all(snapshot, board)
    return Plan(
        evictions=tuple(evictions),
        placements=tuple(placements),
        updates=_updates(snapshot, kept),
        pending=tuple(pending),
    )


# --- evictions ------------------------------------------------------------------------------


def _evictions(snapshot: Snapshot) -> tuple[list[str], list[Evict]]:
    """Assignments to keep (name order) and those to evict, with reasons."""
    kept, evictions = [], []
    for name in sorted(snapshot.assignments):
        reason = _invalid_reason(snapshot, name)
        if reason:
            evictions.append(_evict(snapshot, name, reason))
        else:
            kept.append(name)
    board = _Board(snapshot, ())
    kept = _drop_conflicts(snapshot, board, kept, evictions)
    kept = _drop_orphans(snapshot, board, kept, evictions)
    return kept, evictions


def _evict(snapshot: Snapshot, name: str, reason: str) -> Evict:
    return Evict(unit=name, machine=snapshot.assignments[name].machine, reason=reason)


def _invalid_reason(snapshot: Snapshot, name: str) -> str | None:
    """Why this assignment cannot stand on its own (conflicts and peers are checked later)."""
    spec = snapshot.units.get(name)
    machine_id = snapshot.assignments[name].machine
    machine = snapshot.machines.get(machine_id)
    if spec is None:
        return "unit no longer exists"
    if spec.unit.desired not in _ACTIVE:
        return f"desired state is {spec.unit.desired.value}"
    if spec.requirements.is_global:
        return "global units are not placed by the engine"
    if machine is None:
        return f"machine {machine_id[:8]} went away"
    refusal = _machine_refusal(spec.requirements, machine)
    return f"machine {machine.short_id} {refusal}" if refusal else None


def _drop_conflicts(snapshot: Snapshot, board: _Board, names: list[str], evictions: list[Evict]) -> list[str]:
    """Keep assignments in name order; evict one that conflicts with one kept before it."""
    kept = []
    for name in names:
        machine = snapshot.assignments[name].machine
        rivals = board.conflicting(name, snapshot.units[name].requirements, machine)
        if rivals:
            reason = f"conflicts with {', '.join(rivals)} on machine {machine[:8]}"
            evictions.append(_evict(snapshot, name, reason))
        else:
            board.put(name, machine)
            kept.append(name)
    return kept


def _drop_orphans(snapshot: Snapshot, board: _Board, names: list[str], evictions: list[Evict]) -> list[str]:
    """Evict followers whose MachineOf peer is not on their machine, until none is left."""
    kept = list(names)
    changed = True
    while changed:
        changed = False
        for name in list(kept):
            peer = _missing_peer(snapshot, board, name)
            if peer:
                machine = board.where[name]
                reason = f"peer {peer} is not on machine {machine[:8]}"
                evictions.append(_evict(snapshot, name, reason))
                board.remove(name)
                kept.remove(name)
                changed = True
    return kept


def _missing_peer(snapshot: Snapshot, board: _Board, name: str) -> str | None:
    machine = board.where[name]
    for peer in snapshot.units[name].requirements.machine_of:
        if board.where.get(peer) != machine:
            return peer
    return None


def _machine_refusal(req: Requirements, machine: Machine) -> str | None:
    """Why `machine` can never host a unit with `req` (MachineID, metadata), or None."""
    if not machine_id_matches(req, machine.id):
        return f"is not {req.machine_id} (MachineID)"
    if not metadata_matches(req, machine.metadata):
        return f"does not match metadata {describe_metadata(req)}"
    return None


# --- updates --------------------------------------------------------------------------------


def _updates(snapshot: Snapshot, kept: Iterable[str]) -> tuple[Update, ...]:
    updates = []
    for name in kept:
        unit, current = snapshot.units[name].unit, snapshot.assignments[name]
        if (current.hash, current.desired) != (unit.hash, unit.desired):
            updates.append(Update(_assignment(unit, current.machine), _update_reason(current, unit)))
    return tuple(updates)


def _update_reason(current: Assignment, unit: Unit) -> str:
    changes = []
    if current.hash != unit.hash:
        changes.append(f"unit file changed ({current.hash[:8]} -> {unit.hash[:8]})")
    if current.desired != unit.desired:
        changes.append(f"desired state {current.desired.value} -> {unit.desired.value}")
    return "; ".join(changes)


def _assignment(unit: Unit, machine: str) -> Assignment:
    return Assignment(unit=unit.name, machine=machine, hash=unit.hash, desired=unit.desired)


# --- placements -----------------------------------------------------------------------------


def _place_all(snapshot: Snapshot, board: _Board) -> tuple[list[Place], list[Pending]]:
    """Place unassigned units in name order; a follower waits until its peers are decided."""
    placements: list[Place] = []
    pending: list[Pending] = []
    remaining = dict.fromkeys(_to_place(snapshot, board, pending))
    progress = True
    while remaining and progress:
        progress = False
        for name in list(remaining):
            if not any(p in remaining for p in snapshot.units[name].requirements.machine_of):
                del remaining[name]
                progress = True
                _place_one(snapshot, board, name, placements, pending)
    for name in remaining:  # MachineOf cycles
        peer = next(p for p in snapshot.units[name].requirements.machine_of if p in remaining)
        pending.append(Pending(name, f"waiting for peer {peer}"))
    return placements, sorted(pending, key=lambda p: p.unit)


def _to_place(snapshot: Snapshot, board: _Board, pending: list[Pending]) -> list[str]:
    """Unassigned, active, non-global units in name order; templates go straight to pending."""
    names = []
    for name in sorted(snapshot.units):
        spec = snapshot.units[name]
        if name in board.where or spec.unit.desired not in _ACTIVE or spec.requirements.is_global:
            continue
        if parse_name(name).is_template:
            pending.append(Pending(name, "a template cannot be scheduled; start an instance"))
        else:
            names.append(name)
    return names


def _place_one(
    snapshot: Snapshot, board: _Board, name: str, placements: list[Place], pending: list[Pending]
) -> None:
    spec = snapshot.units[name]
    decide = _decide_follower if spec.requirements.machine_of else _decide_free
    machine, reason = decide(snapshot, board, spec)
    if machine is None:
        pending.append(Pending(name, reason))
    else:
        board.put(name, machine)
        placements.append(Place(_assignment(spec.unit, machine), reason))


def _decide_free(snapshot: Snapshot, board: _Board, spec: UnitSpec) -> tuple[str | None, str]:
    """The least-loaded eligible machine (ties by id), or None and why there is none."""
    if not snapshot.machines:
        return None, "no machines in the cluster"
    kinds: set[str] = set()
    rivals: set[str] = set()
    for machine_id in sorted(snapshot.machines, key=lambda m: (board.load(m), m)):
        kind, conflicting = _refusal(snapshot, board, spec, machine_id)
        if kind is None:
            return machine_id, f"least-loaded eligible machine ({board.load(machine_id)} units)"
        kinds.add(kind)
        rivals.update(conflicting)
    return None, _summarize(spec.requirements, kinds, rivals)


def _refusal(
    snapshot: Snapshot, board: _Board, spec: UnitSpec, machine_id: str
) -> tuple[str | None, list[str]]:
    """(kind of refusal or None if eligible, conflicting unit names if any)."""
    req = spec.requirements
    machine = snapshot.machines[machine_id]
    if not machine_id_matches(req, machine.id):
        return "machine_id", []
    if not metadata_matches(req, machine.metadata):
        return "metadata", []
    rivals = board.conflicting(spec.unit.name, req, machine_id)
    return ("conflicts", rivals) if rivals else (None, [])


def _summarize(req: Requirements, kinds: set[str], rivals: set[str]) -> str:
    """Name the furthest check that machines failed at."""
    if "conflicts" in kinds:
        return f"conflicts with {', '.join(sorted(rivals))} on every candidate"
    if "metadata" in kinds:
        return f"no machine matches metadata {describe_metadata(req)}"
    return f"machine {req.machine_id} (MachineID) is not in the cluster"


def _decide_follower(snapshot: Snapshot, board: _Board, spec: UnitSpec) -> tuple[str | None, str]:
    """A MachineOf follower goes where all its peers are, if that machine accepts it."""
    peers = spec.requirements.machine_of
    for peer in peers:
        if peer not in board.where:
            return None, f"waiting for peer {peer}"
    machines = sorted({board.where[p] for p in peers})
    if len(machines) > 1:
        return None, f"peers {', '.join(peers)} are on different machines"
    return _follow(snapshot, board, spec, machines[0])


def _follow(snapshot: Snapshot, board: _Board, spec: UnitSpec, machine_id: str) -> tuple[str | None, str]:
    peers = ", ".join(spec.requirements.machine_of)
    refusal = _machine_refusal(spec.requirements, snapshot.machines[machine_id])
    rivals = board.conflicting(spec.unit.name, spec.requirements, machine_id)
    if refusal:
        return None, f"machine {machine_id[:8]} of peer {peers} {refusal}"
    if rivals:
        return None, f"conflicts with {', '.join(rivals)} on machine {machine_id[:8]} of peer {peers}"
    return machine_id, f"follows peer {peers} (MachineOf)"
