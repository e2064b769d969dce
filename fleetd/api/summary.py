"""GET /fleet/v1/summary: the whole cluster in one answer, as the web dashboard shows it.

Owns the summary's shape and its arithmetic: per machine the units it runs and the CPU/memory
they ask for (the scheduler's own demand rules, `fleetd.model.requirements`) against its
capacity; per unit its desired state, fleet's derived current state, its placement or pending
reason, its demand and what systemd reports on each host; plus the leader and the alarms.
`build` is pure; `get_summary` only gathers the registry records it needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import Field

from fleetd.api import alarms as alarms_api
from fleetd.api import schema
from fleetd.api.handlers import (
    Result,
    assignments_by_unit,
    current_state,
    machine_to_wire,
    states_by_unit,
)
from fleetd.api.schema import _json
from fleetd.errors import InvalidInput
from fleetd.model.machine import Machine
from fleetd.model.requirements import parse_requirements
from fleetd.model.resources import Resources
from fleetd.model.states import TargetState, UnitState
from fleetd.model.unit import Assignment, Unit
from fleetd.model.unitfile import UnitFile
from fleetd.registry.store import Registry


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


class Summary(schema.Wire):
    leader: str | None = None
    machines: list[MachineSummary]
    units: list[UnitSummary]
    alarms: list[schema.Alarm]


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


def demand_of(unit: Unit, text: str | None) -> Resources:
    """What the unit asks for; nothing when its stored file no longer parses."""
    try:
        return parse_requirements(unit.name, UnitFile.parse(text or "")).resources
    except InvalidInput:
        return Resources()


def build(records: Records) -> Summary:
    """The summary of `records` (pure): machines and units sorted by id and name."""
    placed = assignments_by_unit(records.assignments)
    reported = states_by_unit(records.states)
    units = [_unit(u, placed.get(u.name), reported.get(u.name, {}), records)
             for u in sorted(records.units, key=lambda u: u.name)]
    machines = [_machine(m, units) for m in sorted(records.machines, key=lambda m: m.id)]
    alarms = [alarms_api.to_wire(k, v) for k, v in sorted(records.alarms.items())]
    return Summary(leader=records.leader, machines=machines, units=units, alarms=alarms)


def _unit(unit: Unit, placed: Assignment | None, reported: dict[str, UnitState],
          records: Records) -> UnitSummary:
    demand = demand_of(unit, records.files.get(unit.hash))
    waiting = placed is None and unit.desired != TargetState.INACTIVE and not unit.is_global
    return UnitSummary(
        name=unit.name, desired_state=unit.desired, is_global=unit.is_global,
        current_state=TargetState(current_state(placed, reported)),
        machine_id=placed.machine if placed else None,
        pending_reason=records.pending.get(unit.name) if waiting else None,
        demand=schema.Capacity(cpu=demand.cpu, memory=demand.memory),
        hosts=[HostState(machine_id=m, active_state=s.systemd.active, sub_state=s.systemd.sub)
               for m, s in sorted(reported.items())])


def _machine(machine: Machine, units: Sequence[UnitSummary]) -> MachineSummary:
    """A machine with the load of the units placed on it and the global units it reports."""
    here = [u for u in units if u.machine_id == machine.id
            or (u.is_global and any(h.machine_id == machine.id for h in u.hosts))]
    load = Load(units=len(here), cpu=sum(u.demand.cpu for u in here),
                memory=sum(u.demand.memory for u in here))
    wire = machine_to_wire(machine)
    return MachineSummary(id=wire.id, primary_ip=wire.primary_ip, metadata=wire.metadata,
                          capacity=wire.capacity, load=load)


async def get_summary(reg: Registry) -> Result:
    """Gather the records (each unit file read once per hash) and build the summary."""
    units = await reg.list_units()
    files = {h: await reg.get_file(h) or "" for h in sorted({u.hash for u in units})}
    records = Records(units=units, files=files, assignments=await reg.list_assignments(),
                      states=await reg.list_states(), pending=await reg.list_pending(),
                      machines=await reg.list_machines(), leader=await reg.leader(),
                      alarms=await reg.list_alarms())
    return 200, build(records)
