"""Typed registry operations over the KV port: what the API, engine and agent read and write.

Every write that must not race is a txn with a compare; every engine write carries the
leader's fencing compare (the create revision of the leader key).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from fleetd.errors import Fenced
from fleetd.model.machine import Machine
from fleetd.model.states import TargetState, UnitState
from fleetd.model.unit import Assignment, Unit
from fleetd.registry import codec
from fleetd.registry.keys import Keys
from fleetd.registry.kv import KV, Compare, Delete, Op, Put

MAX_TXN_OPS = 128


class Registry:
    """The registry seen through one KV connection."""

    def __init__(self, kv: KV, keys: Keys) -> None:
        self.kv = kv
        self.keys = keys

    # units and files (API side) ---------------------------------------------------------

    def _unit_ops(self, unit: Unit, text: str | None = None) -> list[Op]:
        """Write the unit record (and file), keeping its global/ copy in step."""
        ops: list[Op] = [Put(self.keys.file(unit.hash), text)] if text is not None else []
        record = codec.encode_unit(unit)
        ops.append(Put(self.keys.unit(unit.name), record))
        ops.append(Put(self.keys.global_unit(unit.name), record) if unit.is_global
                   else Delete(self.keys.global_unit(unit.name)))
        return ops

    async def create_unit(self, unit: Unit, text: str) -> bool:
        """Store the file and the unit record at once; False if the unit already exists."""
        result = await self.kv.txn(
            [Compare(self.keys.unit(unit.name), "version", "==", 0)], self._unit_ops(unit, text)
        )
        return result.succeeded

    async def replace_unit(self, unit: Unit, text: str) -> bool:
        """Point an existing unit at new content and desired state; False if it vanished."""
        result = await self.kv.txn(
            [Compare(self.keys.unit(unit.name), "version", ">", 0)], self._unit_ops(unit, text)
        )
        return result.succeeded

    async def set_desired(self, name: str, desired: TargetState) -> Unit | None:
        """Change a unit's desired state (compare-and-swap); None if there is no such unit."""
        while True:
            kv = await self.kv.get(self.keys.unit(name))
            if kv is None:
                return None
            unit = codec.decode_unit(kv.value)
            new = Unit(name=unit.name, hash=unit.hash, desired=desired, is_global=unit.is_global)
            result = await self.kv.txn(
                [Compare(kv.key, "mod", "==", kv.mod_revision)], self._unit_ops(new)
            )
            if result.succeeded:
                return new

    async def delete_unit(self, name: str) -> bool:
        """Remove the unit record with its global/ copy and pending reason; False if absent."""
        result = await self.kv.txn(
            [Compare(self.keys.unit(name), "version", ">", 0)],
            [Delete(self.keys.unit(name)), Delete(self.keys.global_unit(name)),
             Delete(self.keys.pending_reason(name))],
        )
        return result.succeeded

    async def get_unit(self, name: str) -> Unit | None:
        kv = await self.kv.get(self.keys.unit(name))
        return codec.decode_unit(kv.value) if kv else None

    async def list_units(self) -> list[Unit]:
        listing = await self.kv.get_prefix(self.keys.units)
        return [codec.decode_unit(kv.value) for kv in listing.items]

    async def list_globals(self) -> list[Unit]:
        listing = await self.kv.get_prefix(self.keys.globals)
        return [codec.decode_unit(kv.value) for kv in listing.items]

    async def list_pending(self) -> dict[str, str]:
        """Unit name -> why the leader could not place it (as of its last pass)."""
        listing = await self.kv.get_prefix(self.keys.pending)
        return {self.keys.last_segment(kv.key): kv.value for kv in listing.items}

    async def get_pending(self, name: str) -> str | None:
        kv = await self.kv.get(self.keys.pending_reason(name))
        return kv.value if kv else None

    async def get_file(self, digest: str) -> str | None:
        kv = await self.kv.get(self.keys.file(digest))
        return kv.value if kv else None

    # machines, placements, states (read side) --------------------------------------------

    async def list_machines(self) -> list[Machine]:
        listing = await self.kv.get_prefix(self.keys.machines)
        return sorted((codec.decode_machine(kv.value) for kv in listing.items), key=lambda m: m.id)

    async def list_assignments(self, machine: str | None = None) -> list[Assignment]:
        prefix = self.keys.assigned_to(machine) if machine else self.keys.assign
        listing = await self.kv.get_prefix(prefix)
        return [self.decode_assignment(kv.key, kv.value) for kv in listing.items]

    def decode_assignment(self, key: str, value: str) -> Assignment:
        machine, unit = self.keys.split_pair(key, self.keys.assign)
        return codec.decode_assignment(machine, unit, value)

    async def list_states(self, unit: str | None = None) -> list[UnitState]:
        prefix = self.keys.unit_states(unit) if unit else self.keys.states
        listing = await self.kv.get_prefix(prefix)
        return [self.decode_state(kv.key, kv.value) for kv in listing.items]

    def decode_state(self, key: str, value: str) -> UnitState:
        unit, machine = self.keys.split_pair(key, self.keys.states)
        return codec.decode_state(unit, machine, value)

    # agent side -----------------------------------------------------------------------------

    async def register_machine(self, machine: Machine, lease: int) -> None:
        await self.kv.put(self.keys.machine(machine.id), codec.encode_machine(machine), lease)

    async def put_state(self, state: UnitState, lease: int) -> None:
        await self.kv.put(self.keys.state(state.name, state.machine), codec.encode_state(state), lease)

    async def delete_state(self, unit: str, machine: str) -> None:
        await self.kv.delete(self.keys.state(unit, machine))

    # engine side ----------------------------------------------------------------------------

    async def leader(self) -> str | None:
        kv = await self.kv.get(self.keys.leader)
        return kv.value if kv else None

    async def campaign(self, machine_id: str, lease: int) -> int | None:
        """Try to become leader; return the fencing token (leader key create revision) or None."""
        result = await self.kv.txn(
            [Compare(self.keys.leader, "create", "==", 0)], [Put(self.keys.leader, machine_id, lease)]
        )
        if not result.succeeded:
            return None
        kv = await self.kv.get(self.keys.leader)
        return kv.create_revision if kv and kv.value == machine_id else None

    async def resign(self, token: int) -> None:
        await self.kv.txn([Compare(self.keys.leader, "create", "==", token)], [Delete(self.keys.leader)])

    def place_op(self, a: Assignment) -> Op:
        return Put(self.keys.assignment(a.machine, a.unit), codec.encode_assignment(a))

    def evict_op(self, unit: str, machine: str) -> Op:
        return Delete(self.keys.assignment(machine, unit))

    def pending_op(self, unit: str, reason: str | None) -> Op:
        """Record why `unit` waits, or (reason None) clear it."""
        key = self.keys.pending_reason(unit)
        return Put(key, reason) if reason is not None else Delete(key)

    async def commit(self, token: int, ops: Sequence[Op],
                     on_batch: Callable[[Sequence[Op], int], None] | None = None,
                     in_flight: int = 4) -> int:
        """Apply leader writes in fenced batches, up to `in_flight` txns at a time (so the ops
        of one call must not depend on each other's order); return how many txns it took.

        `on_batch(batch, revision)` is told of each batch etcd accepted, as soon as it did.
        Raises `Fenced` once a batch is refused: the leader key is no longer ours.
        """
        fence = [Compare(self.keys.leader, "create", "==", token)]
        batches = [ops[i:i + MAX_TXN_OPS] for i in range(0, len(ops), MAX_TXN_OPS)]
        gate = asyncio.Semaphore(in_flight)

        async def send(batch: Sequence[Op]) -> None:
            async with gate:
                result = await self.kv.txn(fence, batch)
            if not result.succeeded:
                raise Fenced("leader key changed; this engine is no longer leader")
            if on_batch is not None:
                on_batch(batch, result.revision)

        if len(batches) == 1:
            await send(batches[0])
        elif batches:
            try:
                async with asyncio.TaskGroup() as group:
                    for batch in batches:
                        group.create_task(send(batch))
            except ExceptionGroup as failed:  # report one cause, the fencing first
                fenced = failed.subgroup(Fenced)
                raise (fenced or failed).exceptions[0] from None
        return len(batches)
