"""The scheduler's working copy of the cluster: who runs where and what is left (pure).

Owns who runs where, what each machine has left (capacity minus units and global units), whether
a demand fits, the pairwise checks against the units already on a machine (conflicts and
Replaces), which machines a unit's MachineID/MachineMetadata allow (computed once per distinct
requirement), and the policy orders of `fleetd.engine.order` (built on first use, then kept up
to date on every change). A full pass builds one for itself; the incremental engine
(`fleetd.engine.standing`) keeps one across passes, and tells it when machines join, leave or
change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from fleetd.engine.decision import Snapshot
from fleetd.engine.order import UNLIMITED, MachineOrder
from fleetd.model.globals import globals_on
from fleetd.model.machine import Machine
from fleetd.model.metadata import MetadataRequirement
from fleetd.model.requirements import (
    Requirements,
    conflicts,
    machine_id_matches,
    metadata_matches,
    replaces,
)
from fleetd.model.resources import Resources

__all__ = ["UNLIMITED", "Board", "fits"]


def fits(demand: Resources, free: Resources) -> bool:
    """True if `demand` fits in `free`. A dimension the unit does not use never refuses it, even
    on a machine already over capacity there (running units are never moved for capacity)."""
    return all(need <= room for need, room in ((demand.cpu, free.cpu), (demand.memory, free.memory)) if need)


class Board:
    """Units per machine, resources they use per machine, global units per machine."""

    def __init__(self, snapshot: Snapshot, kept: Iterable[str],
                 machines: Iterable[str] | None = None) -> None:
        """`machines`: only these (a board for one machine's evictions); default every machine."""
        self.snapshot = snapshot
        ids = list(snapshot.machines if machines is None else machines)
        self.where: dict[str, str] = {}
        self.on: dict[str, list[str]] = {m: [] for m in ids}
        self.picky: dict[str, list[str]] = {m: [] for m in ids}  # with Conflicts/Replaces
        self.used: dict[str, Resources] = {m: Resources() for m in ids}
        self.active_globals: dict[str, Requirements] | None = None  # None: global units not counted
        self.globals: dict[str, tuple[str, ...]] = {}
        self.moved: set[str] = set()
        self.machine_order: MachineOrder | None = None
        self._free: dict[str, Resources] = {}
        self._eligible: dict[tuple[str | None, MetadataRequirement],
                             tuple[Requirements, frozenset[str] | None]] = {}
        for name in kept:
            self.put(name, snapshot.assignments[name].machine)

    def add_globals(self, active: Mapping[str, Requirements] | None = None) -> None:
        """Count global units from now on: where they run follows the units on the board (they win).
        `active`: the active global units, when the caller keeps them (else found in the snapshot)."""
        if active is None:
            specs = self.snapshot.units.items()
            active = {n: s.requirements for n, s in specs if s.requirements.is_global and s.active}
        self.active_globals = dict(active)
        for machine in self.snapshot.machines:
            self.globals[machine] = self.globals_running(machine)
        self._free.clear()
        self.machine_order = None

    def globals_running(self, machine: str, displacing: Iterable[str] = ()) -> tuple[str, ...]:
        """The global units that run on `machine`, as if the units in `displacing` had moved away
        (a global unit they keep off would then run)."""
        if not self.active_globals:
            return ()
        gone, units = set(displacing), self.snapshot.units
        resident = {n: units[n].requirements for n in self.on[machine] if n not in gone}
        return globals_on(self.snapshot.machines[machine], self.active_globals, resident)

    def put(self, unit: str, machine: str) -> None:
        req = self.snapshot.units[unit].requirements
        self.where[unit] = machine
        self.on[machine].append(unit)
        if req.conflicts or req.replaces:
            self.picky[machine].append(unit)
        self.used[machine] += req.resources
        self._settle(machine, req.resources.is_zero)

    def remove(self, unit: str) -> None:
        req = self.snapshot.units[unit].requirements
        machine = self.where.pop(unit)
        self.on[machine].remove(unit)
        if req.conflicts or req.replaces:
            self.picky[machine].remove(unit)
        self.used[machine] -= req.resources
        self._settle(machine, req.resources.is_zero)

    def _settle(self, machine: str, same_room: bool) -> None:
        """A unit came or went: global units may change, and the machine moves in the orders.
        `same_room`: the unit needs no resources (free capacity changes only with global units)."""
        if self.active_globals:
            self.globals[machine] = self.globals_running(machine)
            same_room = False
        if not same_room:
            self._free.pop(machine, None)
        if self.machine_order is not None:
            self.machine_order.update(machine, same_room)

    # machines joining, leaving, changing (the board kept across passes) -------------------

    def add_machine(self, machine: str) -> None:
        """A machine joined (it is in the snapshot already); it holds no units yet."""
        self.on[machine], self.picky[machine], self.used[machine] = [], [], Resources()
        self.globals[machine] = self.globals_running(machine)
        self._refile_eligible(machine)
        if self.machine_order is not None:
            self.machine_order.add(machine)

    def drop_machine(self, machine: str) -> None:
        """A machine left (it is out of the snapshot already, its units off the board)."""
        for table in (self.on, self.picky, self.used, self.globals, self._free):
            table.pop(machine, None)
        self._refile_eligible(machine)
        if self.machine_order is not None:
            self.machine_order.remove(machine)

    def refresh_machine(self, machine: str) -> None:
        """A machine's metadata or capacity changed (the snapshot holds the new record)."""
        self.globals[machine] = self.globals_running(machine)
        self._free.pop(machine, None)
        self._refile_eligible(machine)
        if self.machine_order is not None:
            self.machine_order.update(machine)

    def _refile_eligible(self, machine: str) -> None:
        """File `machine` in or out of every MachineID/metadata set found so far."""
        machines = self.snapshot.machines
        found = machines.get(machine)
        for key, (req, allowed) in list(self._eligible.items()):
            takes = found is not None and _allows(req, found)
            if allowed is None:
                if takes or found is None:
                    continue  # still every machine
                allowed = frozenset(machines)
            allowed = allowed | {machine} if takes else allowed - {machine}
            self._eligible[key] = (req, None if len(allowed) == len(machines) else allowed)

    def order(self) -> MachineOrder:
        """The policy orders over every machine (built on first use, then kept up to date)."""
        if self.machine_order is None:
            self.machine_order = MachineOrder(self.snapshot.machines, self.capacity, self.load, self.free)
        return self.machine_order

    def eligible(self, req: Requirements) -> frozenset[str] | None:
        """The machines MachineID and MachineMetadata allow (None: every machine)."""
        key = (req.machine_id, req.metadata)
        if key not in self._eligible:
            machines = self.snapshot.machines.values()
            allowed = frozenset(m.id for m in machines if _allows(req, m))
            self._eligible[key] = (req, None if len(allowed) == len(self.snapshot.machines) else allowed)
        return self._eligible[key][1]

    def load(self, machine: str) -> int:
        """Units on the machine, global units included (fleet's load)."""
        return len(self.on[machine]) + len(self.globals.get(machine, ()))

    def capacity(self, machine: str) -> Resources:
        """The machine's capacity; an unknown (zero) dimension counts as unlimited."""
        cap = self.snapshot.machines[machine].capacity
        return Resources(cpu=cap.cpu or UNLIMITED, memory=cap.memory or UNLIMITED)

    def free(self, machine: str, displacing: Iterable[str] = ()) -> Resources:
        """What is left on `machine` after its units and global units, as if the units in
        `displacing` had moved away (and the global units they keep off were running)."""
        units, gone = self.snapshot.units, list(displacing)
        if not gone and machine in self._free:
            return self._free[machine]
        running = self.globals_running(machine, gone) if gone else self.globals.get(machine, ())
        freed = sum((units[u].requirements.resources for u in gone), Resources())
        taken = sum((units[g].requirements.resources for g in running), Resources())
        free = self.capacity(machine) - self.used[machine] + freed - taken
        if not gone:
            self._free[machine] = free
        return free

    def conflicting(
        self, name: str, req: Requirements, machine: str, displacing: Iterable[str] = ()
    ) -> list[str]:
        """Units on `machine` that conflict with `name` either way, and global units that would run
        there once the units in `displacing` moved away."""
        units, gone = self.snapshot.units, list(displacing)
        running = self.globals_running(machine, gone) if gone else self.globals.get(machine, ())
        residents = self.on[machine] if req.conflicts else self.picky[machine]  # no globs: only theirs
        return [
            other
            for other in (*residents, *running)
            if conflicts(name, req, other, units[other].requirements)
        ]

    def replacers(self, name: str, req: Requirements, machine: str) -> list[str]:
        """Units on `machine` that replace `name` (a replaced unit may not sit next to its replacer)."""
        units = self.snapshot.units
        return [o for o in self.picky[machine] if replaces(o, units[o].requirements, name, req)]

    def displaced(self, name: str, req: Requirements, machine: str) -> list[str]:
        """Units on `machine` that `name` replaces (they would have to move elsewhere)."""
        if not req.replaces:
            return []
        units = self.snapshot.units
        return [o for o in self.on[machine] if replaces(name, req, o, units[o].requirements)]

    def followers(self, leaders: list[str], machine: str) -> list[str]:
        """Units on `machine` that follow (MachineOf, transitively) one of `leaders`: they move with them."""
        units, moving = self.snapshot.units, list(leaders)
        i = 0
        while i < len(moving):
            leader, i = moving[i], i + 1
            moving += [o for o in self.on[machine]
                       if leader in units[o].requirements.machine_of and o not in moving]
        return moving[len(leaders):]


def _allows(req: Requirements, machine: Machine) -> bool:
    return machine_id_matches(req, machine.id) and metadata_matches(req, machine.metadata)
