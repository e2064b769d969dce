"""Big listings, decoded only where they are looked at.

A listing of 100,000 units reads 300,000 records (units, placements, states); decoding each
costs more than reading it, and a page shows 100. `UnitRecords` and `StateRecord` keep what
the keys say (names, machines: enough to sort, filter and count placements) and decode a value
only when asked. The registry builds them; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetd.model.states import UnitState
from fleetd.model.unit import Assignment, Unit
from fleetd.registry import codec
from fleetd.registry.keys import Keys
from fleetd.registry.kv import Listing


@dataclass(frozen=True, slots=True)
class StateRecord:
    """What one machine reports for one unit; `state()` decodes it."""

    unit: str
    machine: str
    value: str

    def state(self) -> UnitState:
        return codec.decode_state(self.unit, self.machine, self.value)


def state_records(keys: Keys, listing: Listing) -> list[StateRecord]:
    """The states of a listing of states/, sorted by unit, then machine."""
    found = [StateRecord(*keys.split_pair(kv.key, keys.states), kv.value) for kv in listing.items]
    found.sort(key=lambda r: (r.unit, r.machine))
    return found


class UnitRecords:
    """Every unit with its placement, reported states and pending reason, from one read.

    `names` is sorted. Where a unit has two placements (a move half done) the one on the
    smallest machine id counts, as `fleetd.api.handlers.assignments_by_unit` decides.
    """

    def __init__(self, keys: Keys, units: Listing, assign: Listing, states: Listing,
                 pending: Listing) -> None:
        self._units = {keys.last_segment(kv.key): kv.value for kv in units.items}
        self.names = sorted(self._units)
        self._placed: dict[str, tuple[str, str]] = {}
        for kv in assign.items:
            machine, unit = keys.split_pair(kv.key, keys.assign)
            if unit not in self._placed or machine < self._placed[unit][0]:
                self._placed[unit] = (machine, kv.value)
        self._reported: dict[str, list[StateRecord]] = {}
        for record in state_records(keys, states):
            self._reported.setdefault(record.unit, []).append(record)
        self.pending = {keys.last_segment(kv.key): kv.value for kv in pending.items}

    def unit(self, name: str) -> Unit:
        return codec.decode_unit(self._units[name])

    def machine_of(self, name: str) -> str | None:
        """Where the unit is placed (read from the key: nothing decoded)."""
        found = self._placed.get(name)
        return found[0] if found else None

    def assignment(self, name: str) -> Assignment | None:
        found = self._placed.get(name)
        return codec.decode_assignment(found[0], name, found[1]) if found else None

    def states(self, name: str) -> dict[str, UnitState]:
        """machine -> what it reports for the unit."""
        return {r.machine: r.state() for r in self._reported.get(name, ())}

    def on_machine(self, machine: str) -> tuple[list[str], list[str]]:
        """The ordinary (not global) units placed on `machine`, and those it reports a state
        for; a unit no longer in the registry counts as ordinary (its host is unloading it)."""
        def ordinary(name: str) -> bool:
            return name not in self._units or not self.unit(name).is_global

        placed = [n for n, (m, _) in self._placed.items() if m == machine and ordinary(n)]
        reported = [n for n, records in self._reported.items()
                    if any(r.machine == machine for r in records) and ordinary(n)]
        return placed, reported

    def all_units(self) -> list[Unit]:
        return [self.unit(name) for name in self.names]

    def all_assignments(self) -> list[Assignment]:
        return [a for name in self.names if (a := self.assignment(name)) is not None]

    def all_states(self) -> list[UnitState]:
        return [r.state() for records in self._reported.values() for r in records]
