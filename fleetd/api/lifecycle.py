"""API v1 machine states and the maintenance lock: the `state` of every machine,
PUT /machines/<id>/state, POST and DELETE /machines/<id>/lock.

Owns which machine a request means (`fleetd.model.lifecycle.resolve`: an id, a unique prefix,
or `self`, this fleetd's own machine) and the shown state: the stored one, or `drained` for a
draining machine that holds nothing movable (derived from one read of the unit records, and
only when some machine is draining). Changing a state is one guarded write
(`fleetd.registry.lifecycle.change`); the engine does the rest. Uncordoning also gives up
the machine's maintenance lock (`fleetd.registry.maintenance`), as locksmith's unlock after boot.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from fleetd.api import schema
from fleetd.errors import Conflict, InvalidInput, NotFound
from fleetd.model import lifecycle
from fleetd.model.lifecycle import DRAINING, LockHolder, MachineState
from fleetd.model.machine import Machine
from fleetd.registry import lifecycle as stored_states
from fleetd.registry import maintenance
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


async def resolve(reg: Registry, query: str, self_id: str | None) -> str:
    """The machine an operator means, among live machines, those with a stored state and the
    holders of the maintenance lock (a host that is away may still hold it)."""
    known = {m.id for m in await reg.list_machines()} | set(await stored_states.read_all(reg))
    known |= {h.machine for h in await maintenance.holders(reg)}
    return lifecycle.resolve(query, known, self_id)


async def set_state(reg: Registry, query: str, body: schema.MachineStateRequest,
                    self_id: str | None) -> Result:
    """Cordon, drain or uncordon one machine; 200 with what changed (nothing, when it was so)."""
    wanted = lifecycle.parse_requested(body.state)
    machine = await resolve(reg, query, self_id)
    if wanted != lifecycle.READY and machine not in {m.id for m in await reg.list_machines()}:
        raise InvalidInput(f"machine {machine[:8]} is not in the cluster now; only uncordon "
                           "applies to a machine that is away")
    if body.if_locked and not any(h.machine == machine for h in await maintenance.holders(reg)):
        current = (await stored_states.read_all(reg)).get(machine)
        state = current.state if current else lifecycle.READY
        return 200, schema.MachineStateChange(machine_id=machine, previous=state, state=state)
    before, after = await stored_states.change(reg, machine, wanted, utc_now())
    unlocked = wanted == lifecycle.READY and await maintenance.release(reg, machine)
    return 200, schema.MachineStateChange(machine_id=machine, previous=before, state=after,
                                          unlocked=unlocked)


def _lock_state(machine: str, holders: Iterable[LockHolder]) -> schema.LockState:
    found = list(holders)
    return schema.LockState(machine_id=machine, held=any(h.machine == machine for h in found),
                            holders=[schema.LockHolder(machine_id=h.machine, slot=h.slot,
                                                       since=h.since) for h in found])


async def lock(reg: Registry, query: str, body: schema.LockRequest, self_id: str | None,
               ttl: float) -> Result:
    """Take (or keep) a slot of the maintenance lock for the machine; 409 while it is busy."""
    limit = lifecycle.check_parallel(body.max_parallel)
    machine = await resolve(reg, query, self_id)
    if machine not in {m.id for m in await reg.list_machines()}:
        raise InvalidInput(f"machine {machine[:8]} is not in the cluster now")
    got, holders = await maintenance.acquire(reg, machine, limit, max(10, round(ttl)), utc_now())
    if not got:
        raise Conflict(lifecycle.busy_message(holders, limit))
    return 200, _lock_state(machine, holders)


async def unlock(reg: Registry, query: str, self_id: str | None) -> Result:
    """Release the machine's slot (for a holder that will not come back); 404 if it holds none."""
    machine = await resolve(reg, query, self_id)
    if not await maintenance.release(reg, machine):
        raise NotFound(f"machine {machine[:8]} holds no maintenance lock")
    return 200, _lock_state(machine, await maintenance.holders(reg))
