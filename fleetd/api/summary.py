"""GET /fleet/v1/summary: the whole cluster in one answer, as the web dashboard shows it.

Owns the summary's shape and its arithmetic: per machine the units it runs and the CPU/memory
they ask for (the scheduler's own demand rules, `fleetd.model.requirements`) against its
capacity; per unit its desired state, fleet's derived current state, its placement or pending
reason, its demand and what systemd reports on each host; plus the leader and the alarms.
`build` is pure; `get_summary` only gathers the registry records it needs.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import Field

from fleetd.api import alarms as alarms_api
from fleetd.api import lifecycle, schema
from fleetd.api.handlers import (
    Result,
    assignments_by_unit,
    current_state,
    machine_to_wire,
    states_by_unit,
)
from fleetd.api.schema import _json
from fleetd.errors import InvalidInput
from fleetd.model.lifecycle import READY
from fleetd.model.machine import Machine
from fleetd.model.requirements import parse_requirements
from fleetd.model.resources import Resources
from fleetd.model.states import TargetState, UnitState
from fleetd.model.unit import Assignment, Unit
from fleetd.model.unitfile import UnitFile
from fleetd.registry import lifecycle as stored_states
from fleetd.registry.store import Registry

DEFAULT_UNITS = 500  # units one answer lists unless asked otherwise
MAX_UNITS = 5000


class Load(schema.Wire):
    """What runs on a machine: how many units, and the CPU (millicores) and memory (bytes) they ask."""

    units: int = 0
    cpu: int = 0
    memory: int = 0


class MachineSummary(schema.Machine):
    load: Load = Field(default_factory=Load)


class HostState(schema.Wire):
    """systemd's view of a unit on one host."""

    machine_id: str = _json("machineID")
    active_state: str = _json("activeState")
    sub_state: str = _json("subState")


class UnitSummary(schema.Wire):
    name: str
    desired_state: TargetState = _json("desiredState")
    current_state: TargetState = _json("currentState")
    machine_id: str | None = _json("machineID", default=None)
    pending_reason: str | None = _json("pendingReason", default=None)
    is_global: bool = _json("global", default=False)
    demand: schema.Capacity = Field(default_factory=schema.Capacity)
    hosts: list[HostState] = Field(default_factory=list)


class Totals(schema.Wire):
    """Counts over every unit, whatever window of them the answer holds."""

    units: int = 0
    active: int = 0  # reported active on at least one host
    pending: int = 0  # want to run and are not placed (with a reason)
    matching: int = 0  # units the name filter keeps (the window is cut from these)


class Summary(schema.Wire):
    leader: str | None = None
    machines: list[MachineSummary]
    units: list[UnitSummary]
    alarms: list[schema.Alarm]
    totals: Totals = Field(default_factory=Totals)
    units_offset: int = _json("unitsOffset", default=0)


@dataclass(frozen=True, slots=True)
class Window:
    """Which units the answer lists: those whose name matches `glob`, from `offset`, at most `limit`."""

    offset: int = 0
    limit: int = DEFAULT_UNITS
    glob: str | None = None


@dataclass(frozen=True)
class Records:
    """The registry records a summary is made of."""

    units: Sequence[Unit]
    files: Mapping[str, str]  # hash -> unit file text
    assignments: Sequence[Assignment]
    states: Sequence[UnitState]
    pending: Mapping[str, str]
    machines: Sequence[Machine]
    leader: str | None = None
    alarms: Mapping[str, str] = field(default_factory=dict)
    machine_states: Mapping[str, str] = field(default_factory=dict)  # shown; absent: ready


def demand_of(unit: Unit, text: str | None) -> Resources:
    """What the unit asks for; nothing when its stored file no longer parses."""
    try:
        return parse_requirements(unit.name, UnitFile.parse(text or "")).resources
    except InvalidInput:
        return Resources()


def build(records: Records, window: Window = Window()) -> Summary:
    """The summary of `records` (pure): every machine with its load, the totals, and the
    window of units, machines and units sorted by id and name. Linear in the records: each
    unit file's demand is parsed once per hash."""
    placed = assignments_by_unit(records.assignments)
    reported = states_by_unit(records.states)
    units = sorted(records.units, key=lambda u: u.name)
    demands: dict[str, Resources] = {}
    for unit in units:
        if unit.hash not in demands:
            demands[unit.hash] = demand_of(unit, records.files.get(unit.hash))
    matching = [u for u in units if window.glob is None or fnmatch.fnmatchcase(u.name, window.glob)]
    shown = [_unit(u, placed.get(u.name), reported.get(u.name, {}), records, demands[u.hash])
             for u in matching[window.offset:window.offset + window.limit]]
    loads = _loads(units, placed, reported, demands)
    machines = [_machine(m, loads.get(m.id, Load()), records.machine_states.get(m.id, READY))
                for m in sorted(records.machines, key=lambda m: m.id)]
    alarms = [alarms_api.to_wire(k, v) for k, v in sorted(records.alarms.items())]
    totals = Totals(
        units=len(units), matching=len(matching),
        active=sum(any(s.systemd.active == "active" for s in reported.get(u.name, {}).values())
                   for u in units),
        pending=sum(_waiting(u, placed.get(u.name)) and u.name in records.pending for u in units))
    return Summary(leader=records.leader, machines=machines, units=shown, alarms=alarms,
                   totals=totals, units_offset=window.offset)


def _loads(units: Sequence[Unit], placed: Mapping[str, Assignment],
           reported: Mapping[str, Mapping[str, UnitState]],
           demands: Mapping[str, Resources]) -> dict[str, Load]:
    """machine -> the load of the units placed there and of the global units it reports."""
    sums: dict[str, list[int]] = {}
    for unit in units:
        if unit.is_global:
            hosts: Sequence[str] = list(reported.get(unit.name, {}))
        else:
            hosts = [placed[unit.name].machine] if unit.name in placed else []
        demand = demands[unit.hash]
        for machine in hosts:
            total = sums.setdefault(machine, [0, 0, 0])
            total[0], total[1], total[2] = total[0] + 1, total[1] + demand.cpu, total[2] + demand.memory
    return {m: Load(units=n, cpu=cpu, memory=memory) for m, (n, cpu, memory) in sums.items()}


def _waiting(unit: Unit, placed: Assignment | None) -> bool:
    return placed is None and unit.desired != TargetState.INACTIVE and not unit.is_global


def _unit(unit: Unit, placed: Assignment | None, reported: dict[str, UnitState],
          records: Records, demand: Resources) -> UnitSummary:
    return UnitSummary(
        name=unit.name, desired_state=unit.desired, is_global=unit.is_global,
        current_state=TargetState(current_state(placed, reported)),
        machine_id=placed.machine if placed else None,
        pending_reason=records.pending.get(unit.name) if _waiting(unit, placed) else None,
        demand=schema.Capacity(cpu=demand.cpu, memory=demand.memory),
        hosts=[HostState(machine_id=m, active_state=s.systemd.active, sub_state=s.systemd.sub)
               for m, s in sorted(reported.items())])


def _machine(machine: Machine, load: Load, state: str) -> MachineSummary:
    """A machine with the load of the units placed on it and the global units it reports."""
    wire = machine_to_wire(machine, state)
    return MachineSummary(id=wire.id, primary_ip=wire.primary_ip, metadata=wire.metadata,
                          capacity=wire.capacity, state=wire.state, load=load)


def parse_window(query: Mapping[str, str]) -> Window:
    """`unitsOffset`, `unitsLimit` (1..MAX_UNITS) and `unit` (a name glob) of the query."""
    def number(name: str, default: int, low: int, high: int) -> int:
        text = query.get(name, "")
        if not text:
            return default
        if not text.isdigit() or not low <= int(text) <= high:
            raise InvalidInput(f"{name} must be a whole number from {low} to {high}")
        return int(text)

    return Window(offset=number("unitsOffset", 0, 0, 10**9),
                  limit=number("unitsLimit", DEFAULT_UNITS, 1, MAX_UNITS),
                  glob=query.get("unit") or None)


async def get_summary(reg: Registry, window: Window = Window()) -> Result:
    """Gather the records (one read of the unit records, the files in batches) and build."""
    found = await reg.unit_records()
    units = found.all_units()
    files = await reg.get_files({u.hash for u in units})
    records = Records(units=units, files=files, assignments=found.all_assignments(),
                      states=found.all_states(), pending=found.pending,
                      machines=await reg.list_machines(), leader=await reg.leader(),
                      alarms=await reg.list_alarms(),
                      machine_states=lifecycle.shown(await stored_states.read_all(reg), found))
    return 200, build(records, window)
