"""The incremental engine: the placement state that stands between passes, advanced by deltas (pure).

`Standing.start(snapshot)` is a full pass (`fleetd.engine.scheduler`) that keeps what it built:
its own copy of the units, machines and assignments, the board of the kept assignments (with the
global units and the policy orders), and three indexes: the units assigned to each machine, the
units without a placement, and the placed units whose file hash or desired state changed.
`step(delta)` folds a `fleetd.engine.changes.Delta` in and decides the next pass, with work in
proportion to the change:

- evictions are decided again only on the machines the delta touched (a machine's evictions
  depend on it alone: `evictions.machine_evictions`), and only those are filed again on the board;
- global units are counted again on every machine only when the active global units changed;
- placement and updates (`scheduler.complete`) start from the standing board, with the units
  that have no placement (new, evicted and pending ones) and the changed assignments.

The decision is the one `schedule` makes for the same snapshot (test_standing_properties compares
them over random sequences of changes). The units on each machine stay in name order, as on a
fresh board, so Replaces moves units aside in the same order. Afterwards the standing state takes
its decision as done: the leader commits it next, and drops the standing state if that fails.
"""

from __future__ import annotations

from collections.abc import Iterable

from fleetd.engine.board import Board
from fleetd.engine.changes import Delta, UnitState
from fleetd.engine.decision import Decision, Evict, Snapshot, UnitSpec
from fleetd.engine.evictions import evictions, machine_evictions
from fleetd.engine.scheduler import complete
from fleetd.model.machine import Machine
from fleetd.model.requirements import Requirements
from fleetd.model.unit import Assignment


class Standing:
    """Units, machines and assignments as the last decision left them, with the board built on them."""

    def __init__(self, snapshot: Snapshot, board: Board) -> None:
        self.snapshot = snapshot  # its own dicts, shared with `board`
        self.board = board
        self.units: dict[str, UnitSpec] = snapshot.units  # type: ignore[assignment]
        self.machines: dict[str, Machine] = snapshot.machines  # type: ignore[assignment]
        self.assignments: dict[str, Assignment] = snapshot.assignments  # type: ignore[assignment]
        self.globals: dict[str, Requirements] = dict(board.active_globals or {})
        self.held: frozenset[str] = frozenset()
        self.on: dict[str, set[str]] = {}  # machine -> units assigned to it (any machine id)
        for name, assignment in self.assignments.items():
            self.on.setdefault(assignment.machine, set()).add(name)
        self.unplaced: set[str] = set()  # in the snapshot, active, not global, not on the board
        self.stale: set[str] = set()  # on the board, assignment behind the unit's hash or state

    @classmethod
    def start(cls, snapshot: Snapshot, held: Iterable[str] = ()) -> tuple[Standing, Decision]:
        """A full pass over `snapshot` (held units already left out), and the state it leaves."""
        own = Snapshot(dict(snapshot.units), dict(snapshot.machines), dict(snapshot.assignments),
                       snapshot.policy)
        kept, evicted, board = evictions(own)
        board.add_globals()
        plan = complete(own, board, kept, evicted)
        standing = cls(own, board)
        standing.held = frozenset(held)
        standing._adopt(plan)
        return standing, plan

    def step(self, delta: Delta) -> Decision:
        """Fold `delta` in and decide the pass a full pass would decide on the same state."""
        changed, dirty = self._take(delta)
        evicted = self._recheck(dirty)
        self._refresh([*changed, *(e.unit for e in evicted)])
        plan = complete(self.snapshot, self.board, sorted(self.stale), evicted, list(self.unplaced))
        self._adopt(plan)
        return plan

    # folding a delta in ----------------------------------------------------------------

    def _take(self, delta: Delta) -> tuple[list[str], set[str]]:
        """Store the delta's new values; return the changed units and the machines whose
        evictions must be decided again (their units are off the board now)."""
        changed = [(n, s) for n, s in delta.units.items()
                   if (self.units.get(n), self.assignments.get(n)) != (s.spec, s.assignment)]
        machines = {m: r for m, r in delta.machines.items() if self.machines.get(m) != r}
        dirty = set(machines)
        globals_changed = False
        for name, state in changed:
            old = self.assignments.get(name)
            dirty.update(a.machine for a in (old, state.assignment) if a is not None)
            spec = self.units.get(name)
            globals_changed |= spec != state.spec and _is_active_global(spec) | _is_active_global(state.spec)
        for machine in dirty:  # while the board can still read the units' old requirements
            for unit in list(self.board.on.get(machine, ())):
                self.board.remove(unit)
        for name, state in changed:
            self._set_unit(name, state)
        if globals_changed:  # before any machine is touched: none may count a global unit gone
            self.board.add_globals(self.globals)
        for machine, record in machines.items():
            self._set_machine(machine, record)
        self.held = delta.held
        return [n for n, _ in changed], dirty

    def _set_unit(self, name: str, state: UnitState) -> None:
        _put(self.units, name, state.spec)
        if _is_active_global(state.spec):
            self.globals[name] = state.spec.requirements  # type: ignore[union-attr]
        else:
            self.globals.pop(name, None)
        self._unassign(name)
        if state.assignment is not None:
            self._assign(state.assignment)

    def _set_machine(self, machine: str, record: Machine | None) -> None:
        joined = machine not in self.machines
        _put(self.machines, machine, record)
        if record is None:
            self.board.drop_machine(machine)
        elif joined:
            self.board.add_machine(machine)
        else:
            self.board.refresh_machine(machine)

    def _recheck(self, dirty: set[str]) -> list[Evict]:
        """Decide the evictions of each dirty machine again and put back on the board what stays."""
        evicted: list[Evict] = []
        for machine in sorted(dirty):
            kept, gone = machine_evictions(self.snapshot, machine, self.on.get(machine, ()))
            for name in kept:
                self.board.put(name, machine)
            evicted += gone
        return evicted

    def _refresh(self, names: Iterable[str]) -> None:
        """Bring the units-to-place and stale indexes up to date for `names`."""
        for name in names:
            spec, on_board = self.units.get(name), name in self.board.where
            if spec is not None and spec.active and not spec.requirements.is_global and not on_board:
                self.unplaced.add(name)
            else:
                self.unplaced.discard(name)
            current = self.assignments.get(name)
            if on_board and spec is not None and current is not None and \
                    (current.hash, current.desired) != (spec.unit.hash, spec.unit.desired):
                self.stale.add(name)
            else:
                self.stale.discard(name)

    # taking a decision as done ---------------------------------------------------------

    def _adopt(self, plan: Decision) -> None:
        """The assignments as `plan` leaves them (the board holds them already)."""
        for evict in plan.evictions:
            self._unassign(evict.unit)
            self.stale.discard(evict.unit)
        for change in (*(u.assignment for u in plan.updates), *(p.assignment for p in plan.placements)):
            self._unassign(change.unit)
            self._assign(change)
            self.stale.discard(change.unit)
        self.unplaced = {p.unit for p in plan.pending}
        for machine in {p.assignment.machine for p in plan.placements}:
            self.board.on[machine].sort()  # name order, as a fresh board files them
            self.board.picky[machine].sort()
        self.board.moved.clear()

    def _assign(self, assignment: Assignment) -> None:
        self.assignments[assignment.unit] = assignment
        self.on.setdefault(assignment.machine, set()).add(assignment.unit)

    def _unassign(self, name: str) -> None:
        old = self.assignments.pop(name, None)
        if old is not None:
            here = self.on[old.machine]
            here.discard(name)
            if not here:
                del self.on[old.machine]


def _is_active_global(spec: UnitSpec | None) -> bool:
    return spec is not None and spec.active and spec.requirements.is_global


def _put(table: dict, key: str, value: object) -> None:  # type: ignore[type-arg]
    if value is None:
        table.pop(key, None)
    else:
        table[key] = value


def cross_check(snapshot: Snapshot, held: Iterable[str], standing: Standing | None,
                delta: Delta | None) -> tuple[Standing, Decision, bool]:
    """A full pass over `snapshot` and the state it leaves; given a standing state and its delta
    too, also whether that state's step decides the same."""
    fresh, plan = Standing.start(snapshot, held)
    if standing is None or delta is None:
        return fresh, plan, True
    return fresh, plan, same_decision(standing.step(delta), plan)


def same_decision(a: Decision, b: Decision) -> bool:
    """The same actions for the same reasons; evictions in any order (all go before placements)."""
    def order(e: Evict) -> tuple[str, str, str]:
        return e.unit, e.machine, e.reason
    return (sorted(a.evictions, key=order) == sorted(b.evictions, key=order)
            and (a.placements, a.updates, a.pending) == (b.placements, b.updates, b.pending))
