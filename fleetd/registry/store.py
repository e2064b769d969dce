"""Typed registry operations over the KV port: what the API, engine and agent read and write.

Every write that must not race is a txn with a compare; every engine write carries the
leader's fencing compare (the create revision of the leader key).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from fleetd.errors import Fenced
from fleetd.model.machine import Machine
from fleetd.model.names import refusal
from fleetd.model.states import TargetState, UnitState
from fleetd.model.unit import Assignment, Unit
from fleetd.registry import codec
from fleetd.registry.keys import Keys
from fleetd.registry.kv import KV, Compare, Delete, KeyValue, Op, Put
from fleetd.registry.records import StateRecord, UnitRecords, state_records

MAX_TXN_OPS = 128
MAX_TXN_BYTES = 512 * 1024  # keys + values of one unit batch txn; etcd refuses requests > 1.5 MiB


def op_bytes(op: Op) -> int:
    return len(op.key.encode()) + (len(op.value.encode()) if isinstance(op, Put) else 0)


def txn_batches(ops: Sequence[Op]) -> list[Sequence[Op]]:
    """`ops` in order, cut into runs of at most MAX_TXN_OPS ops and MAX_TXN_BYTES bytes."""
    batches: list[Sequence[Op]] = []
    start, size = 0, 0
    for i, op in enumerate(ops):
        cost = op_bytes(op)
        if i > start and (i - start >= MAX_TXN_OPS or size + cost > MAX_TXN_BYTES):
            batches.append(ops[start:i])
            start, size = i, 0
        size += cost
    if start < len(ops):
        batches.append(ops[start:])
    return batches


@dataclass(frozen=True, slots=True)
class UnitWrite:
    """One unit change of a batch (`Registry.write_units`).

    `unit` is the new record; `text` the file to store with it (None when only the desired
    state changes); `revision` the unit's mod revision the change was decided against (0: the
    unit must not exist yet); `was_global` the stored record's Global=, so global/ follows.
    """

    unit: Unit
    text: str | None = None
    revision: int = 0
    was_global: bool = False


@dataclass
class _UnitTxn:
    """A unit batch txn being packed: its writes, their ops and its size in bytes so far."""

    writes: list[UnitWrite] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)
    files: set[str] = field(default_factory=set)
    size: int = 0

    def take(self, write: UnitWrite, ops: list[Op], file: Put | None) -> bool:
        """Add `write` with its ops (and its file, once per txn) unless a bound would break."""
        if file is not None and write.unit.hash not in self.files:
            ops = [file, *ops]
        size = len(write.unit.name.encode()) + sum(op_bytes(op) for op in ops)  # + its compare
        if self.writes and (len(self.ops) + len(ops) > MAX_TXN_OPS or self.size + size > MAX_TXN_BYTES):
            return False
        self.writes.append(write)
        self.ops += ops
        self.size += size
        if file is not None:
            self.files.add(write.unit.hash)
        return True


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
            [Compare(self.keys.unit(name), "version", ">", 0)], self._delete_ops(name))
        return result.succeeded

    async def delete_units(self, names: Sequence[str]) -> list[bool]:
        """Remove many units as `delete_unit` does, in few txns; per name, in order, whether
        it existed and was removed. Names must be unique.

        One listing says which exist and at which mod revision; each txn removes up to
        MAX_TXN_OPS // 3 of them, guarded per unit by that revision. A txn that lost a race
        is redone unit by unit with `delete_unit`; so are invalid names (no bound on their
        size), which only a write past the API can have stored.
        """
        listed = await self.units_with_revisions()
        present = [n for n in names if n in listed]
        batched = [n for n in present if refusal(n) is None]
        done = {n: await self.delete_unit(n) for n in present if refusal(n) is not None}
        step = MAX_TXN_OPS // 3
        for start in range(0, len(batched), step):
            group = batched[start:start + step]
            result = await self.kv.txn(
                [Compare(self.keys.unit(n), "mod", "==", listed[n][1]) for n in group],
                [op for n in group for op in self._delete_ops(n)])
            done |= {n: result.succeeded or await self.delete_unit(n) for n in group}
        return [done.get(n, False) for n in names]

    def _delete_ops(self, name: str) -> list[Op]:
        return [Delete(self.keys.unit(name)), Delete(self.keys.global_unit(name)),
                Delete(self.keys.pending_reason(name))]

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

    async def get_files(self, digests: Iterable[str]) -> dict[str, str]:
        """hash -> text of the stored files among `digests`, read MAX_TXN_OPS to a request."""
        wanted = sorted(set(digests))
        found: dict[str, str] = {}
        for start in range(0, len(wanted), MAX_TXN_OPS):
            chunk = wanted[start:start + MAX_TXN_OPS]
            listings = await self.kv.get_prefixes([self.keys.file(d) for d in chunk])
            for digest, listing in zip(chunk, listings, strict=True):
                exact = [kv.value for kv in listing.items if kv.key == self.keys.file(digest)]
                if exact:
                    found[digest] = exact[0]
        return found

    async def unit_records(self) -> UnitRecords:
        """Every unit with its placement, reported states and pending reason: one consistent
        read (one request) of the four prefixes, decoded only where looked at."""
        listings = await self.kv.get_prefixes(
            [self.keys.units, self.keys.assign, self.keys.states, self.keys.pending])
        return UnitRecords(self.keys, *listings)

    async def state_records(self, unit: str | None = None) -> list[StateRecord]:
        """What every machine reports (for one unit, or all), sorted, decoded when asked."""
        listing = await self.kv.get_prefix(self.keys.unit_states(unit) if unit else self.keys.states)
        return [r for r in state_records(self.keys, listing) if unit is None or r.unit == unit]

    async def units_with_revisions(self) -> dict[str, tuple[Unit, int]]:
        """Every unit with the mod revision it was read at, from one prefix listing."""
        listing = await self.kv.get_prefix(self.keys.units)
        found = ((codec.decode_unit(kv.value), kv.mod_revision) for kv in listing.items)
        return {unit.name: (unit, revision) for unit, revision in found}

    async def write_units(self, writes: Sequence[UnitWrite]) -> list[bool]:
        """Apply many unit changes in few txns; per write, in order, whether it was applied.

        Each txn holds at most MAX_TXN_OPS ops and MAX_TXN_BYTES bytes, a file shared by its
        units once, and one compare per unit (create: version == 0; otherwise the mod revision
        in the write), so every unit changes whole or not at all. A txn whose compares fail
        (someone raced us) is redone unit by unit with the single-unit methods above; a write
        that still loses is reported False. Unit names must be unique.
        """
        if len({w.unit.name for w in writes}) != len(writes):
            raise ValueError("write_units: unit names must be unique")
        done: list[bool] = []
        for txn in self._pack_unit_txns(writes):
            result = await self.kv.txn([self._write_guard(w) for w in txn.writes], txn.ops)
            done += [True] * len(txn.writes) if result.succeeded else [
                await self._write_one(w) for w in txn.writes]
        return done

    def _pack_unit_txns(self, writes: Sequence[UnitWrite]) -> list[_UnitTxn]:
        txns: list[_UnitTxn] = []
        for w in writes:
            ops = self._write_ops(w)
            file = Put(self.keys.file(w.unit.hash), w.text) if w.text is not None else None
            if not txns or not txns[-1].take(w, ops, file):
                txns.append(_UnitTxn())
                txns[-1].take(w, ops, file)
        return txns

    def _write_guard(self, w: UnitWrite) -> Compare:
        key = self.keys.unit(w.unit.name)
        return Compare(key, "mod", "==", w.revision) if w.revision else Compare(key, "version", "==", 0)

    def _write_ops(self, w: UnitWrite) -> list[Op]:
        """The record, and its global/ copy only when it is or was global (no no-op deletes)."""
        record = codec.encode_unit(w.unit)
        ops: list[Op] = [Put(self.keys.unit(w.unit.name), record)]
        if w.unit.is_global:
            ops.append(Put(self.keys.global_unit(w.unit.name), record))
        elif w.was_global:
            ops.append(Delete(self.keys.global_unit(w.unit.name)))
        return ops

    async def _write_one(self, w: UnitWrite) -> bool:
        """A write whose batch txn lost a race, with today's single-unit semantics."""
        if not w.revision:
            return await self.create_unit(w.unit, w.text or "")
        if w.text is not None:
            return await self.replace_unit(w.unit, w.text)
        return await self.set_desired(w.unit.name, w.unit.desired) is not None

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

    async def write_states(self, machine: str, lease: int, changed: Sequence[UnitState],
                           gone: Sequence[str], extra: Sequence[Op] = ()) -> int:
        """Put `changed` on `lease` and delete the states of the units `gone` from `machine`
        (plus `extra` ops in the same txns, e.g. the endpoint records of those changes).

        One txn per `txn_batches` batch, no compares; returns how many txns it took. If one
        raises, the earlier ones stay applied.
        """
        ops: list[Op] = [Put(self.keys.state(s.name, machine), codec.encode_state(s), lease)
                         for s in changed]
        ops += [Delete(self.keys.state(unit, machine)) for unit in gone]
        ops += extra
        batches = txn_batches(ops)
        for batch in batches:
            await self.kv.txn((), batch)
        return len(batches)

    def decode_global(self, key: str, value: str) -> Unit:
        """A global/ record (a copy of the unit record), as the agents' watch delivers it."""
        return codec.decode_unit(value)

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

    async def leader_claim(self) -> tuple[KeyValue | None, KeyValue | None]:
        """The leader key and the presence key of the machine it names (None: absent)."""
        leader = await self.kv.get(self.keys.leader)
        if leader is None or not leader.lease:
            return leader, None
        return leader, await self.kv.get(self.keys.machine(leader.value))

    async def depose(self, mod_revision: int) -> bool:
        """Delete the leader key if it is still the one last written at `mod_revision`."""
        result = await self.kv.txn([Compare(self.keys.leader, "mod", "==", mod_revision)],
                                   [Delete(self.keys.leader)])
        return result.succeeded

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

    def move_done_op(self, unit: str) -> Op:
        """Withdraw an operator's move request (it is done, or cannot be)."""
        return Delete(self.keys.move(unit))

    def forget_failure_op(self, unit: str, machine: str) -> Op:
        """Delete a failure record that no longer matters (unit gone, or a new unit file)."""
        return Delete(self.keys.failure(unit, machine))

    def alarm_op(self, kind: str, record: str | None) -> Op:
        """Raise (or, record None, clear) the alarm `kind`."""
        key = self.keys.alarm(kind)
        return Put(key, record) if record is not None else Delete(key)

    async def list_alarms(self) -> dict[str, str]:
        """Raised alarms: kind -> JSON record."""
        listing = await self.kv.get_prefix(self.keys.alarms)
        return {kv.key[len(self.keys.alarms):]: kv.value for kv in listing.items}

    async def clear_alarm(self, kind: str) -> bool:
        """An operator's acknowledgement: remove the alarm; False if it was not raised."""
        return await self.kv.delete(self.keys.alarm(kind))

    async def commit(self, token: int, ops: Sequence[Op],
                     on_batch: Callable[[Sequence[Op], int], None] | None = None,
                     in_flight: int = 4) -> int:
        """Apply leader writes in fenced batches (`txn_batches`), up to `in_flight` txns at a
        time (so the ops of one call must not depend on each other's order); return how many
        txns it took.

        `on_batch(batch, revision)` is told of each batch etcd accepted, as soon as it did.
        Raises `Fenced` once a batch is refused: the leader key is no longer ours.
        """
        fence = [Compare(self.keys.leader, "create", "==", token)]
        batches = txn_batches(ops)
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
