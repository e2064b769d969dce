"""The leader's in-memory model of the registry, fed by listings and watch events (pure).

Owns what the leader knows between passes: unit records, live machines, assignments, pending
reasons, raised alarms, operators' machine states (cordoned, draining) and move requests, the
failure records of units that reschedule on failure, and the unit files it has parsed. `load`
replaces one prefix's contents from a listing (at leadership start, or after a compaction);
`apply` folds one watch event in; `record_commit` folds in the leader's own writes as soon as
etcd accepted them, so the next pass never acts on a stale view. Each key remembers the
revision it was last changed at, so an event older than what the model already holds (the
leader's own write, echoed back) changes nothing.

`version` grows on every real change: a pass with an unchanged version would decide nothing
new, so the engine skips it. A snapshot shares the model's `UnitSpec` objects; specs are
built once per (unit, file hash), so a full pass costs a dict copy, not a re-parse.

For the incremental engine the model also notes what changed (`take_changes`, a
`fleetd.engine.changes.Changes`: units whose record, spec or assignment changed, machines that
joined, left or changed; a listing marks everything) and keeps the units assigned to each machine
(`assigned`). The leader's own writes are not noted: its standing state holds them already.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from fleetd.engine.changes import ChangeLog, Changes
from fleetd.engine.decision import BINPACK, Snapshot, UnitSpec
from fleetd.errors import InvalidInput
from fleetd.model.lifecycle import Move
from fleetd.model.machine import Machine
from fleetd.model.requirements import Requirements, parse_requirements
from fleetd.model.unit import Assignment, Unit
from fleetd.model.unitfile import UnitFile
from fleetd.registry import codec
from fleetd.registry.keys import Keys
from fleetd.registry.kv import Delete, KeyValue, Op, Put, WatchEvent

SECTIONS = ("machines", "assign", "pending", "units", "alarms", "machine_states", "moves",
            "failures")
T = TypeVar("T")


class LeaderView:
    """Units, machines, assignments and pending reasons as of the last event seen."""

    def __init__(self, keys: Keys) -> None:
        self.keys = keys
        self.units: dict[str, Unit] = {}
        self.machines: dict[str, Machine] = {}
        self.assignments: dict[str, Assignment] = {}
        self.assigned: dict[str, set[str]] = {}  # machine -> units assigned to it
        self.pending: dict[str, str] = {}
        self.alarms: dict[str, str] = {}  # kind -> record
        self.machine_states: dict[str, str] = {}  # machine -> cordoned or draining
        self.moves: dict[str, Move] = {}  # unit -> an operator's move request
        self.failures: dict[str, dict[str, str]] = {}  # unit -> machine -> file hash that failed
        self.specs: dict[str, UnitSpec] = {}
        self.invalid: dict[str, str] = {}  # unit -> why its stored file cannot be used
        self.version = 0
        self._revisions: dict[str, int] = {}
        self._files: dict[str, UnitFile | str] = {}  # hash -> parsed file, or why it is unusable
        self._parsed: dict[tuple[str, str | bool], Requirements | str] = {}
        self._missing: set[str] = set()  # hashes of units' files not fetched yet
        self._changes = ChangeLog()

    # feeding -----------------------------------------------------------------------------

    def prefix(self, section: str) -> str:
        return {"machines": self.keys.machines, "assign": self.keys.assign,
                "pending": self.keys.pending, "units": self.keys.units,
                "alarms": self.keys.alarms, "machine_states": self.keys.machine_states,
                "moves": self.keys.moves, "failures": self.keys.failures}[section]

    def load(self, section: str, items: Iterable[KeyValue], revision: int) -> None:
        """Replace everything under one section with a listing read at `revision`."""
        prefix = self.prefix(section)
        for key in [k for k in self._revisions if k.startswith(prefix)]:
            del self._revisions[key]
        self._clear(section)
        for item in items:
            self._put(item.key, item.value, revision)
        self.version += 1
        self._changes.relisted |= section in ("machines", "assign", "units")

    def apply(self, event: WatchEvent) -> bool:
        """Fold one watch event in; True if it changed anything."""
        if event.mod_revision <= self._revisions.get(event.key, 0):
            return False
        if event.kind == "put":
            changed = self._put(event.key, event.value, event.mod_revision)
        else:
            changed = self._delete(event.key, event.mod_revision)
        if changed:
            self.version += 1
        return changed

    def record_commit(self, ops: Iterable[Op], revision: int,
                      placed: Mapping[str, Assignment] | None = None) -> None:
        """The leader's own writes, accepted by etcd at `revision` (their events come later).
        `placed`: the assignments behind assignment puts, by key (saves decoding them again)."""
        known = placed or {}
        self._changes.muted = True  # the standing state decided these writes: nothing to note
        for op in ops:
            if isinstance(op, Put) and op.key in known:
                self._revisions[op.key] = revision
                self._set_assignment(known[op.key])
            elif isinstance(op, Put):
                self._put(op.key, op.value, revision)
            elif isinstance(op, Delete):
                self._delete(op.key, revision)
        self._changes.muted = False

    def _clear(self, section: str) -> None:
        if section == "machines":
            self.machines.clear()
        elif section == "assign":
            self.assignments.clear()
            self.assigned.clear()
        elif section == "pending":
            self.pending.clear()
        elif section == "alarms":
            self.alarms.clear()
        elif section == "machine_states":
            self.machine_states.clear()
        elif section == "moves":
            self.moves.clear()
        elif section == "failures":
            self.failures.clear()
        else:
            self.units.clear()
            self.specs.clear()
            self.invalid.clear()
            self._missing.clear()

    def _put(self, key: str, value: str, revision: int) -> bool:
        self._revisions[key] = revision
        keys = self.keys
        if key.startswith(keys.units):
            return self._put_unit(codec.decode_unit(value))
        if key.startswith(keys.machines):
            machine = codec.decode_machine(value)
            return self._noted_machine(machine.id, _store(self.machines, machine.id, machine))
        if key.startswith(keys.assign):
            return self._set_assignment(self._assignment(key, value))
        if key.startswith(keys.pending):
            return _store(self.pending, key[len(keys.pending):], value)
        if key.startswith(keys.alarms):
            return _store(self.alarms, key[len(keys.alarms):], value)
        if key.startswith(keys.machine_states):
            return self._put_machine_state(key[len(keys.machine_states):], value)
        if key.startswith(keys.moves):
            return self._put_move(key[len(keys.moves):], value)
        if key.startswith(keys.failures):
            return self._put_failure(key, value)
        return False

    def _delete(self, key: str, revision: int) -> bool:
        self._revisions[key] = revision
        keys = self.keys
        if key.startswith(keys.units):
            name = key[len(keys.units):]
            if name in self.units:
                self._parsed.pop((self.units[name].hash, name), None)
            self.specs.pop(name, None)
            self.invalid.pop(name, None)
            self._changes.unit(name)
            return self.units.pop(name, None) is not None
        if key.startswith(keys.machines):
            machine = key[len(keys.machines):]
            return self._noted_machine(machine, self.machines.pop(machine, None) is not None)
        if key.startswith(keys.assign):
            machine, unit = keys.split_pair(key, keys.assign)
            current = self.assignments.get(unit)
            if current is not None and current.machine == machine:
                self._drop_assignment(current)
                return True
            return False
        if key.startswith(keys.pending):
            return self.pending.pop(key[len(keys.pending):], None) is not None
        if key.startswith(keys.alarms):
            return self.alarms.pop(key[len(keys.alarms):], None) is not None
        if key.startswith(keys.machine_states):
            return self.machine_states.pop(key[len(keys.machine_states):], None) is not None
        if key.startswith(keys.moves):
            return self.moves.pop(key[len(keys.moves):], None) is not None
        if key.startswith(keys.failures):
            unit, machine = keys.split_pair(key, keys.failures)
            found = self.failures.get(unit, {})
            changed = found.pop(machine, None) is not None
            if not found:
                self.failures.pop(unit, None)
            return changed
        return False

    def _put_failure(self, key: str, value: str) -> bool:
        unit, machine = self.keys.split_pair(key, self.keys.failures)
        digest = codec.decode_failure(value)
        if digest is None:
            return False
        return _store(self.failures.setdefault(unit, {}), machine, digest)

    def _put_move(self, unit: str, value: str) -> bool:
        found = codec.decode_move(unit, value)
        if found is None:
            return self.moves.pop(unit, None) is not None
        return _store(self.moves, unit, found)

    def _put_machine_state(self, machine: str, value: str) -> bool:
        found = codec.decode_machine_state(value)
        if found is None:
            return self.machine_states.pop(machine, None) is not None
        return _store(self.machine_states, machine, found.state)

    def _assignment(self, key: str, value: str) -> Assignment:
        machine, unit = self.keys.split_pair(key, self.keys.assign)
        return codec.decode_assignment(machine, unit, value)

    def _set_assignment(self, assignment: Assignment) -> bool:
        current = self.assignments.get(assignment.unit)
        if current == assignment:
            return False
        if current is not None:
            self._drop_assignment(current)
        self.assignments[assignment.unit] = assignment
        self.assigned.setdefault(assignment.machine, set()).add(assignment.unit)
        self._changes.unit(assignment.unit)
        return True

    def _drop_assignment(self, assignment: Assignment) -> None:
        del self.assignments[assignment.unit]
        here = self.assigned[assignment.machine]
        here.discard(assignment.unit)
        if not here:
            del self.assigned[assignment.machine]
        self._changes.unit(assignment.unit)

    def _noted_machine(self, machine: str, changed: bool) -> bool:
        if changed:
            self._changes.machine(machine)
        return changed

    # units and their files ---------------------------------------------------------------

    def _put_unit(self, unit: Unit) -> bool:
        if self.units.get(unit.name) == unit:
            return False
        self.units[unit.name] = unit
        self._changes.unit(unit.name)
        self.specs.pop(unit.name, None)
        self.invalid.pop(unit.name, None)
        if unit.hash in self._files:
            self._build_spec(unit)
        else:
            self._missing.add(unit.hash)
        return True

    def _build_spec(self, unit: Unit) -> None:
        found = self._requirements(unit.name, unit.hash)
        if isinstance(found, str):
            self.invalid[unit.name] = found
        else:
            self.specs[unit.name] = UnitSpec(unit=unit, requirements=found)

    def _requirements(self, name: str, digest: str) -> Requirements | str:
        """Parsed once per file, and per unit name only if [X-Fleet] uses specifiers (%i...);
        otherwise the name matters only as template instance or not (Instances= is checked)."""
        unitfile = self._files[digest]
        if isinstance(unitfile, str):
            return unitfile
        key = (digest, name if _uses_specifiers(unitfile) else "@" in name)
        if key not in self._parsed:
            try:
                self._parsed[key] = parse_requirements(name, unitfile)
            except InvalidInput as exc:
                self._parsed[key] = f"stored unit file is invalid: {exc}"
        return self._parsed[key]

    def missing_files(self) -> set[str]:
        """Hashes of unit files the model needs before it can schedule every unit (kept as units
        arrive, so asking costs nothing; a unit deleted before its file came may leave its hash)."""
        return set(self._missing)

    def add_file(self, digest: str, text: str | None) -> list[str]:
        """Take a fetched file (None: not in the registry) and build the specs of the units that
        use it; return one line per unit that cannot be scheduled because of it."""
        self._files[digest] = self._parse_file(text)
        self._missing.discard(digest)
        problems = []
        for unit in [u for u in self.units.values() if u.hash == digest]:
            self._build_spec(unit)
            self._changes.unit(unit.name)
            if unit.name in self.invalid:
                problems.append(f"{unit.name}: {self.invalid[unit.name]}")
        self.version += 1
        return problems

    @staticmethod
    def _parse_file(text: str | None) -> UnitFile | str:
        if text is None:
            return "unit file missing from the registry"
        try:
            return UnitFile.parse(text)
        except InvalidInput as exc:
            return f"stored unit file is invalid: {exc}"

    # reading -----------------------------------------------------------------------------

    def snapshot(self, policy: str = BINPACK) -> Snapshot:
        """What the scheduler reads: units with usable files, live machines, assignments."""
        return Snapshot(units=dict(self.specs), machines=dict(self.machines),
                        assignments=dict(self.assignments), policy=policy,
                        machine_states=dict(self.machine_states), moves=dict(self.moves))

    def live(self, policy: str = BINPACK) -> Snapshot:
        """The same, without copying: read it at once, in the thread that feeds the model."""
        return Snapshot(units=self.specs, machines=self.machines, assignments=self.assignments,
                        policy=policy)

    def take_changes(self) -> Changes:
        """What changed since the last call (the first call after a listing says `relisted`)."""
        return self._changes.take()


def _uses_specifiers(unitfile: UnitFile) -> bool:
    return any("%" in o.value for o in unitfile.options if o.section == "X-Fleet")


def _store(mapping: dict[str, T], key: str, value: T) -> bool:
    """Set `mapping[key]`; True if that changed it."""
    changed = mapping.get(key) != value
    mapping[key] = value
    return changed
