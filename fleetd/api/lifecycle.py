"""API v1 machine states: the `state` of every machine, and PUT /machines/<id>/state.

Owns which machine a request means (`fleetd.model.lifecycle.resolve`: an id, a unique prefix,
or `self`, this fleetd's own machine) and the shown state: the stored one, or `drained` for a
draining machine that holds nothing movable (derived from one read of the unit records, and
only when some machine is draining). Changing a state is one guarded write
(`fleetd.registry.lifecycle.change`); the engine does the rest.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from fleetd.api import schema
from fleetd.errors import InvalidInput
from fleetd.model import lifecycle
from fleetd.model.lifecycle import DRAINING, MachineState
from fleetd.model.machine import Machine
from fleetd.registry import lifecycle as stored_states
from fleetd.registry.records import UnitRecords
from fleetd.registry.store import Registry

Result = tuple[int, schema.Wire | None]


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def shown(stored: dict[str, MachineState], records: UnitRecords | None) -> dict[str, str]:
    """machine -> the state to show (pure); `records` is needed only when one is draining."""
    found = {}
    for machine, state in stored.items():
        if state.state == DRAINING and records is not None:
            placed, reported = records.on_machine(machine)
            stuck = [n for n in placed if n in records.pending]
            found[machine] = lifecycle.derive(state.state, placed, stuck, reported)
        else:
            found[machine] = state.state
    return found


async def machines_with_states(reg: Registry) -> list[tuple[Machine, str]]:
    """Every live machine with its shown state: one read, plus one of the unit records only
    while some machine is draining."""
    machines, stored = await stored_states.machines_and_states(reg)
    draining = any(s.state == DRAINING for s in stored.values())
    states = shown(stored, await reg.unit_records() if draining else None)
    return [(m, states.get(m.id, lifecycle.READY)) for m in machines]


async def resolve(reg: Registry, query: str, self_id: str | None,
                  also: Iterable[str] = ()) -> str:
    """The machine an operator means, among live machines, those with a stored state and `also`."""
    known = {m.id for m in await reg.list_machines()} | set(await stored_states.read_all(reg))
    return lifecycle.resolve(query, known | set(also), self_id)


async def set_state(reg: Registry, query: str, body: schema.MachineStateRequest,
                    self_id: str | None) -> Result:
    """Cordon, drain or uncordon one machine; 200 with what changed (nothing, when it was so)."""
    wanted = lifecycle.parse_requested(body.state)
    machine = await resolve(reg, query, self_id)
    if wanted != lifecycle.READY and machine not in {m.id for m in await reg.list_machines()}:
        raise InvalidInput(f"machine {machine[:8]} is not in the cluster now; only uncordon "
                           "applies to a machine that is away")
    before, after = await stored_states.change(reg, machine, wanted, utc_now())
    return 200, schema.MachineStateChange(machine_id=machine, previous=before, state=after)
