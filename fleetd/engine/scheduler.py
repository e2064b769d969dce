"""The scheduler: one pure function from a cluster snapshot to a plan of placement changes.

Owns the order of a pass: evict what can no longer stand (evictions.py), settle where global units
run, place what is unassigned (placement.py), keep the units a draining machine cannot hand on
(lifecycle.py), and update in place the assignments whose file hash
or desired state changed. Every action carries a reason in words. Deterministic: no clock, no
randomness, no dependence on dict order. Global units are never placed here (each agent decides
for itself), but they count toward load, conflicts and resources. `complete` is the part after
evictions, shared with the incremental engine (`fleetd.engine.standing`), which keeps the board
across passes and decides evictions only for the machines a change touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from fleetd.engine.board import Board
from fleetd.engine.decision import (
    BINPACK,
    SPREAD,
    Decision,
    Evict,
    Pending,
    Place,
    Snapshot,
    UnitSpec,
    Update,
)
from fleetd.engine.evictions import evictions
from fleetd.engine.lifecycle import gave_up, keep_stuck, moves_done
from fleetd.engine.placement import place_all
from fleetd.model.unit import Assignment, Unit

__all__ = [
    "BINPACK", "SPREAD", "Evict", "Pending", "Place", "Decision", "Snapshot", "UnitSpec", "Update",
    "complete", "schedule",
]


def schedule(snapshot: Snapshot) -> Decision:
    """Decide evictions, in-place updates and placements for one reconcile pass.

    While draining machines may hand on only a few units (`drain_slots`), units that could not
    leave must not take the slots of those that can: the pass is decided again with them kept
    where they are (and their reasons kept), until no new one is found.
    """
    decision, stuck = _decide(snapshot)
    held: dict[str, Pending] = {}
    while snapshot.drain_slots is not None and stuck.keys() - held.keys():
        held |= stuck
        snapshot = replace(snapshot, drain_kept=frozenset(held))
        decision, stuck = _decide(snapshot)
    if not held:
        return decision
    pending = {p.unit: p for p in decision.pending} | held
    return replace(decision, pending=tuple(pending[u] for u in sorted(pending)))


def _decide(snapshot: Snapshot) -> tuple[Decision, dict[str, Pending]]:
    """One pass; and the units that should have left a draining machine but stay."""
    kept, evicted, board = evictions(snapshot)
    board.add_globals()
    return _complete(snapshot, board, kept, evicted)


def complete(snapshot: Snapshot, board: Board, kept: Iterable[str], evicted: list[Evict],
             to_place: Iterable[str] | None = None) -> Decision:
    """The rest of a pass once evictions are decided: `board` holds exactly the kept assignments
    and counts global units. `kept`: name order, the kept units whose update is to be checked;
    `to_place`: the units without a kept assignment (None: found in the snapshot). Only for
    snapshots with no drain budget (the engine takes full passes while a machine drains)."""
    return _complete(snapshot, board, kept, evicted, to_place)[0]


def _complete(snapshot: Snapshot, board: Board, kept: Iterable[str], evicted: list[Evict],
              to_place: Iterable[str] | None = None) -> tuple[Decision, dict[str, Pending]]:
    outcome = place_all(snapshot, board, to_place)
    still = [name for name in kept if board.where.get(name) == snapshot.assignments[name].machine]
    drains = {e.unit for e in evicted + outcome.evictions if e.drain}
    evicted, pending, stay = keep_stuck(evicted + outcome.evictions, outcome.pending)
    placed = {p.assignment.unit for p in outcome.placements}
    decision = Decision(
        evictions=tuple(evicted),
        placements=tuple(outcome.placements),
        updates=_updates(snapshot, still + stay),
        pending=tuple(pending + gave_up(snapshot)),
        moves_done=tuple(moves_done(snapshot, placed, stay)),
    )
    return decision, {p.unit: p for p in pending if p.unit in drains and p.unit in stay}


def _updates(snapshot: Snapshot, kept: list[str]) -> tuple[Update, ...]:
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
