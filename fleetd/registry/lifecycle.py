"""Machine states in the registry: `<prefix>machine-state/<machine>` records (no lease).

Owns reading them and changing one: read-modify-write guarded by the record's mod revision
(retried when another operator got in between), so two concurrent requests for one machine
end in one of the two states, never a mix.
"""

from __future__ import annotations

from fleetd.errors import RegistryUnavailable
from fleetd.model import lifecycle
from fleetd.model.lifecycle import MachineState
from fleetd.model.machine import Machine
from fleetd.registry import codec
from fleetd.registry.kv import Compare, Delete, Listing, Op, Put
from fleetd.registry.store import Registry

ATTEMPTS = 20


def _decode(registry: Registry, listing: Listing) -> dict[str, MachineState]:
    found = {registry.keys.last_segment(kv.key): codec.decode_machine_state(kv.value)
             for kv in listing.items}
    return {m: s for m, s in found.items() if s is not None}


async def read_all(registry: Registry) -> dict[str, MachineState]:
    """machine id -> its stored state (machines without a record are ready)."""
    return _decode(registry, await registry.kv.get_prefix(registry.keys.machine_states))


async def machines_and_states(registry: Registry) -> tuple[list[Machine], dict[str, MachineState]]:
    """The live machines (sorted by id) and the stored states, in one read."""
    keys = registry.keys
    machines, states = await registry.kv.get_prefixes([keys.machines, keys.machine_states])
    live = sorted((codec.decode_machine(kv.value) for kv in machines.items), key=lambda m: m.id)
    return live, _decode(registry, states)


async def change(registry: Registry, machine: str, wanted: str, now: str) -> tuple[str, str]:
    """Set `machine` to `wanted` (ready deletes the record); return (before, after).

    A request for the state the machine is in already changes nothing (its `since` stays).
    """
    key = registry.keys.machine_state(machine)
    for _ in range(ATTEMPTS):
        found = await registry.kv.get(key)
        stored = codec.decode_machine_state(found.value) if found else None
        before = stored.state if stored else lifecycle.READY
        after = lifecycle.transition(before, wanted, machine)
        if (after or lifecycle.READY) == before:
            return before, before
        op: Op = Put(key, codec.encode_machine_state(MachineState(after, now))) if after else Delete(key)
        guard = Compare(key, "mod", "==", found.mod_revision if found else 0)
        if (await registry.kv.txn([guard], [op])).succeeded:
            return before, after or lifecycle.READY
    raise RegistryUnavailable("the machine's state kept changing under the request; try again")
