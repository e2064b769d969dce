"""What changed in the leader's model since the last pass, as the incremental engine reads it (pure).

`ChangeLog` collects, while watch events are folded into the model, the names of the units whose
record, parsed file or assignment changed and the ids of the machines that joined, left or changed;
a listing (leadership start, a compaction) marks everything changed. `delta` turns what was
collected into a `Delta`: frozen copies of the new values, read from the model in the event loop,
so the pass that applies them (`fleetd.engine.standing`) can run in a thread while more events
arrive. Units held back by the departure rules (`fleetd.engine.departures`) enter a delta as
gone, as the full pass's restricted snapshot leaves them out.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from fleetd.engine.decision import Snapshot, UnitSpec
from fleetd.model.machine import Machine
from fleetd.model.unit import Assignment


@dataclass(frozen=True, slots=True)
class Changes:
    """Names of what changed; `relisted`: a listing replaced a section, anything may have."""

    units: frozenset[str] = frozenset()
    machines: frozenset[str] = frozenset()
    relisted: bool = False


class ChangeLog:
    """The names noted since the last `take` (none while `muted`)."""

    def __init__(self) -> None:
        self.units: set[str] = set()
        self.machines: set[str] = set()
        self.relisted = False
        self.muted = False

    def unit(self, name: str) -> None:
        if not self.muted:
            self.units.add(name)

    def machine(self, machine_id: str) -> None:
        if not self.muted:
            self.machines.add(machine_id)

    def take(self) -> Changes:
        """What was noted, and start afresh."""
        taken = Changes(frozenset(self.units), frozenset(self.machines), self.relisted)
        self.units, self.machines, self.relisted = set(), set(), False
        return taken


@dataclass(frozen=True, slots=True)
class UnitState:
    """A unit as the scheduler sees it now: its spec (None: gone, unusable or held) and its
    assignment (None: unassigned or held)."""

    spec: UnitSpec | None
    assignment: Assignment | None


@dataclass(frozen=True, slots=True)
class Delta:
    """New values of the units and machines that changed (a machine None: it left), and every
    unit the departure rules hold back now."""

    units: Mapping[str, UnitState] = field(default_factory=dict)
    machines: Mapping[str, Machine | None] = field(default_factory=dict)
    held: frozenset[str] = frozenset()


def delta(source: Snapshot, changes: Changes, held: Collection[str], held_before: Collection[str]
          ) -> Delta:
    """The delta for `changes` against `source` (the model as it is now, not restricted). A unit
    whose hold began or ended counts as changed."""
    now = frozenset(held)
    names = changes.units | (now ^ frozenset(held_before))
    units = {n: UnitState(None, None) if n in now
             else UnitState(source.units.get(n), source.assignments.get(n)) for n in names}
    machines = {m: source.machines.get(m) for m in changes.machines}
    return Delta(units, machines, now)
