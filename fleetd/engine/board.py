"""The scheduler's working copy of the cluster during one pass (local to one `schedule` call).

Owns who runs where, what each machine has left (capacity minus units and global units), and the
pairwise checks against the units already on a machine: conflicts and Replaces.
"""

from __future__ import annotations

from collections.abc import Iterable

from fleetd.engine.plan import Snapshot
from fleetd.model.globals import globals_on
from fleetd.model.requirements import Requirements, conflicts, replaces
from fleetd.model.resources import Resources

UNLIMITED = 1 << 62


class Board:
    """Units per machine, resources used per machine, global units per machine."""

    def __init__(self, snapshot: Snapshot, kept: Iterable[str]) -> None:
        self.snapshot = snapshot
        self.where: dict[str, str] = {}
        self.on: dict[str, list[str]] = {m: [] for m in snapshot.machines}
        self.used: dict[str, Resources] = {m: Resources() for m in snapshot.machines}
        self.globals: dict[str, tuple[str, ...]] = {}
        self.moved: set[str] = set()
        for name in kept:
            self.put(name, snapshot.assignments[name].machine)

    def add_globals(self) -> None:
        """Settle which global units run where, given the units on the board now (they win)."""
        units = self.snapshot.units
        active = {n: s.requirements for n, s in units.items() if s.requirements.is_global and s.active}
        for machine_id, machine in self.snapshot.machines.items():
            resident = {n: units[n].requirements for n in self.on[machine_id]}
            self.globals[machine_id] = globals_on(machine, active, resident)
            for name in self.globals[machine_id]:
                self.used[machine_id] += active[name].resources

    def put(self, unit: str, machine: str) -> None:
        self.where[unit] = machine
        self.on[machine].append(unit)
        self.used[machine] += self.snapshot.units[unit].requirements.resources

    def remove(self, unit: str) -> None:
        machine = self.where.pop(unit)
        self.on[machine].remove(unit)
        self.used[machine] -= self.snapshot.units[unit].requirements.resources

    def load(self, machine: str) -> int:
        """Units on the machine, global units included (fleet's load)."""
        return len(self.on[machine]) + len(self.globals.get(machine, ()))

    def capacity(self, machine: str) -> Resources:
        """The machine's capacity; an unknown (zero) dimension counts as unlimited."""
        cap = self.snapshot.machines[machine].capacity
        return Resources(cpu=cap.cpu or UNLIMITED, memory=cap.memory or UNLIMITED)

    def free(self, machine: str, ignoring: Iterable[str] = ()) -> Resources:
        """What is left on `machine`, as if the units in `ignoring` were gone."""
        freed = sum((self.snapshot.units[u].requirements.resources for u in ignoring), Resources())
        return self.capacity(machine) - self.used[machine] + freed

    def conflicting(self, name: str, req: Requirements, machine: str) -> list[str]:
        """Units (global ones included) on `machine` that conflict with `name` either way, or that
        replace it (a replaced unit may not sit next to its replacer)."""
        units = self.snapshot.units
        rivals = [
            other
            for other in (*self.on[machine], *self.globals.get(machine, ()))
            if conflicts(name, req, other, units[other].requirements)
            or replaces(other, units[other].requirements, name, req)
        ]
        return rivals

    def displaced(self, name: str, req: Requirements, machine: str) -> list[str]:
        """Units on `machine` that `name` replaces (they would have to move elsewhere)."""
        units = self.snapshot.units
        return [o for o in self.on[machine] if replaces(name, req, o, units[o].requirements)]
