"""Which current assignments must go, and why (pure; the first step of a scheduling pass).

An assignment goes when its unit is gone, inactive, global or a template, its machine is gone,
the machine no longer satisfies MachineID/MachineMetadata, it conflicts with a unit kept before it
(name order), a unit that replaces it sits on the same machine (either name order), or its
MachineOf peer is not on its machine.
Capacity is not re-checked for existing placements: a running unit is never moved to make room.

What is evicted from one machine depends only on that machine's record, the assignments on it and
their units (global units do not count yet), so `machine_evictions` decides one machine alone,
as a full pass would; the incremental engine re-checks just the machines a change touched.
"""

from __future__ import annotations

from collections.abc import Iterable

from fleetd.engine.board import Board
from fleetd.engine.decision import Evict, Snapshot
from fleetd.engine.lifecycle import leaving
from fleetd.model.machine import Machine
from fleetd.model.names import parse_name
from fleetd.model.requirements import (
    Requirements,
    describe_metadata,
    machine_id_matches,
    metadata_matches,
)


def evictions(snapshot: Snapshot) -> tuple[list[str], list[Evict], Board]:
    """Assignments to keep (name order) and those to evict, with reasons; and the board holding
    exactly the kept ones (the placement step goes on from it)."""
    evicted: list[Evict] = []
    kept = _valid(snapshot, snapshot.assignments, evicted)
    board = Board(snapshot, ())
    kept = _drop_conflicts(snapshot, board, kept, evicted)
    kept = _drop_orphans(snapshot, board, kept, evicted)
    return kept, evicted, board


def machine_evictions(snapshot: Snapshot, machine: str, names: Iterable[str]
                      ) -> tuple[list[str], list[Evict]]:
    """The eviction step for the units assigned to one machine (`names`): those a full pass
    keeps there (name order) and those it evicts, for the same reasons. Only for snapshots
    without machine states or a drain budget (a drain budget is shared by all machines; the
    engine takes full passes while one is set)."""
    evicted: list[Evict] = []
    kept = _valid(snapshot, names, evicted)
    if kept:
        board = Board(snapshot, (), machines=(machine,))
        kept = _drop_conflicts(snapshot, board, kept, evicted)
        kept = _drop_orphans(snapshot, board, kept, evicted)
    return kept, evicted


def _valid(snapshot: Snapshot, names: Iterable[str], evicted: list[Evict]) -> list[str]:
    """The assignments that can stand on their own, in name order; the others go to `evicted`."""
    kept = []
    slots = snapshot.drain_slots  # drain moves this pass may still start (None: no limit)
    for name in sorted(names):
        reason = _invalid_reason(snapshot, name)
        move = leaving(snapshot, name) if not reason else None
        if reason:
            evicted.append(_evict(snapshot, name, reason))
        elif move is not None and (not move[1] or slots is None or slots > 0):
            slots = slots - 1 if move[1] and slots is not None else slots
            evicted.append(Evict(name, snapshot.assignments[name].machine, move[0], soft=True,
                                 drain=move[1]))
        else:
            kept.append(name)
    return kept


def machine_refusal(req: Requirements, machine: Machine) -> str | None:
    """Why `machine` can never host a unit with `req` (MachineID, metadata), or None."""
    if not machine_id_matches(req, machine.id):
        return f"is not {req.machine_id} (MachineID)"
    if not metadata_matches(req, machine.metadata):
        return f"does not match metadata {describe_metadata(req)}"
    return None


def _evict(snapshot: Snapshot, name: str, reason: str) -> Evict:
    return Evict(unit=name, machine=snapshot.assignments[name].machine, reason=reason)


def _invalid_reason(snapshot: Snapshot, name: str) -> str | None:
    """Why this assignment cannot stand on its own (conflicts and peers are checked later)."""
    spec = snapshot.units.get(name)
    machine_id = snapshot.assignments[name].machine
    machine = snapshot.machines.get(machine_id)
    if spec is None:
        return "unit no longer exists"
    if not spec.active:
        return f"desired state is {spec.unit.desired.value}"
    if spec.requirements.is_global:
        return "global units are not placed by the engine"
    if "@" in name and parse_name(name).is_template:
        return "a template cannot be scheduled"
    if machine is None:
        return f"machine {machine_id[:8]} went away"
    refusal = machine_refusal(spec.requirements, machine)
    return f"machine {machine.short_id} {refusal}" if refusal else None


def _drop_conflicts(snapshot: Snapshot, board: Board, names: list[str], evicted: list[Evict]) -> list[str]:
    """Keep assignments in name order; evict one that conflicts with one kept before it or that one
    kept before it replaces, and any kept unit that a later-kept unit replaces."""
    kept: list[str] = []
    for name in names:
        machine = snapshot.assignments[name].machine
        req = snapshot.units[name].requirements
        rivals = board.conflicting(name, req, machine)
        if rivals:
            reason = f"conflicts with {', '.join(rivals)} on machine {machine[:8]}"
            evicted.append(_evict(snapshot, name, reason))
            continue
        replacers = board.replacers(name, req, machine)
        if replacers:
            reason = f"replaced by {', '.join(replacers)} on machine {machine[:8]}"
            evicted.append(_evict(snapshot, name, reason))
            continue
        for loser in board.displaced(name, req, machine):
            evicted.append(_evict(snapshot, loser, f"replaced by {name} on machine {machine[:8]}"))
            board.remove(loser)
            kept.remove(loser)
        board.put(name, machine)
        kept.append(name)
    return kept


def _drop_orphans(snapshot: Snapshot, board: Board, names: list[str], evicted: list[Evict]) -> list[str]:
    """Evict followers whose MachineOf peer is not on their machine, until none is left."""
    kept = list(names)
    changed = True
    while changed:
        changed = False
        for name in list(kept):
            peer = _missing_peer(snapshot, board, name)
            if peer:
                machine = board.where[name]
                evicted.append(_evict(snapshot, name, f"peer {peer} is not on machine {machine[:8]}"))
                board.remove(name)
                kept.remove(name)
                changed = True
    return kept


def _missing_peer(snapshot: Snapshot, board: Board, name: str) -> str | None:
    machine = board.where[name]
    for peer in snapshot.units[name].requirements.machine_of:
        if board.where.get(peer) != machine:
            return peer
    return None
