"""A rebalance plan (pure): which units to move so the placement goal holds again.

Placement decides once, when a unit is placed; hosts that join or return later get only new
units. `plan` finds moves one at a time, each applied to the working snapshot before the next:
for a unit, the machine the scheduler would choose now if the unit were unplaced (every rule
of `fleetd.engine.scheduler` applies, cordoned and draining machines take nothing), and the
move is kept only if it improves the unit's goal:

- spread (the unit's or the cluster's policy, and every unit that needs no resources): the
  target runs at least 2 units fewer than the unit's machine, so the counts get closer;
- binpack (a unit with resources under binpack): the target is fuller than the unit's machine
  would be without it, so the load gathers on fewer machines.

Both measures only ever improve, so the plan ends. Units pinned by MachineID, MachineOf
followers and their peers, global units and units with an operator's move under way are left
alone. Each step says why, in words.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from fleetd.engine.decision import BINPACK, Snapshot, UnitSpec
from fleetd.engine.scheduler import schedule
from fleetd.model.lifecycle import STORED
from fleetd.model.resources import Resources


@dataclass(frozen=True, slots=True)
class Step:
    unit: str
    away: str
    to: str
    why: str


def plan(snapshot: Snapshot, max_moves: int) -> list[Step]:
    """Up to `max_moves` moves, in the order they should be made."""
    steps: list[Step] = []
    while len(steps) < max_moves:
        step = next(_improving(snapshot), None)
        if step is None:
            break
        steps.append(step)
        moved = replace(snapshot.assignments[step.unit], machine=step.to)
        snapshot = replace(snapshot, assignments={**snapshot.assignments, step.unit: moved})
    return steps


def _improving(snapshot: Snapshot) -> Iterator[Step]:
    counts = _counts(snapshot)
    for name in _candidates(snapshot, counts):
        away = snapshot.assignments[name].machine
        found = _choice(snapshot, name)
        if found is None or found[0] == away:
            continue
        to, reason = found
        why = _improves(snapshot, counts, name, away, to)
        if why:
            yield Step(name, away, to, f"{why}; {reason}")


def _counts(snapshot: Snapshot) -> dict[str, int]:
    counts = {m: 0 for m in snapshot.machines}
    for a in snapshot.assignments.values():
        if a.machine in counts:
            counts[a.machine] += 1
    return counts


def _candidates(snapshot: Snapshot, counts: dict[str, int]) -> list[str]:
    """Movable units, those on the busiest machines first, then by name."""
    peers = {p for s in snapshot.units.values() for p in s.requirements.machine_of}
    movable = [n for n, a in snapshot.assignments.items()
               if a.machine in snapshot.machines and n in snapshot.units and n not in peers
               and n not in snapshot.moves and _free_to_move(snapshot.units[n])]
    return sorted(movable, key=lambda n: (-counts[snapshot.assignments[n].machine], n))


def _free_to_move(spec: UnitSpec) -> bool:
    req = spec.requirements
    return spec.active and not req.is_global and req.machine_id is None and not req.machine_of


def _choice(snapshot: Snapshot, name: str) -> tuple[str, str] | None:
    """Where the scheduler would place `name` now if it were unplaced, and why."""
    trial = replace(snapshot, assignments={n: a for n, a in snapshot.assignments.items() if n != name})
    for p in schedule(trial).placements:
        if p.assignment.unit == name:
            return p.assignment.machine, p.reason
    return None


def _improves(snapshot: Snapshot, counts: dict[str, int], name: str, away: str, to: str) -> str:
    """Why moving `name` from `away` to `to` improves its goal ("" if it does not)."""
    if snapshot.machine_states.get(to) in STORED:
        return ""
    spec = snapshot.units[name]
    if (spec.requirements.policy or snapshot.policy) != BINPACK or spec.requirements.resources.is_zero:
        if counts[away] - counts[to] >= 2:
            return f"spread: {counts[away]} units on {away[:8]}, {counts[to]} on {to[:8]}"
        return ""
    here = _fill(snapshot, away, without=spec.requirements.resources)
    there = _fill(snapshot, to)
    if there > here:
        return f"binpack: {to[:8]} is {there:.0%} full, {away[:8]} would be {here:.0%}"
    return ""


NOTHING = Resources()


def _fill(snapshot: Snapshot, machine: str, without: Resources = NOTHING) -> float:
    """How full the machine is (mean of the cpu and memory shares it knows), less `without`."""
    used = sum((snapshot.units[a.unit].requirements.resources for a in snapshot.assignments.values()
                if a.machine == machine and a.unit in snapshot.units), Resources()) - without
    capacity = snapshot.machines[machine].capacity
    shares = [u / c for u, c in ((used.cpu, capacity.cpu), (used.memory, capacity.memory)) if c]
    return sum(shares) / len(shares) if shares else 0.0
