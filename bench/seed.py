"""What the engine benchmark puts into etcd before it measures: machines, unit files, units.

Machines are presence keys on their own leases, shaped as fleetd's agents write them (metadata
`region`, `rack`; 16 CPU / 64G), so the engine sees a real cluster without any systemd. Units
are written as the API writes them (record + content-addressed file), in txns of 128 ops sent a
few at a time. Mixes: `plain` (no [X-Fleet] at all: fleet's benchmark) and `resources` (eight
CPU/Memory shapes, binpacked).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence

from fleetd.model.machine import Machine
from fleetd.model.resources import Resources
from fleetd.model.states import TargetState
from fleetd.model.unit import Unit
from fleetd.model.unitfile import UnitFile
from fleetd.registry import codec
from fleetd.registry.keys import Keys
from fleetd.registry.kv import KV, Op, Put
from fleetd.registry.store import txn_batches

GIB = 1024**3
CAPACITY = Resources(cpu=16_000, memory=64 * GIB)
TEMPLATE = "bench@.service"
BASE = "[Unit]\nDescription=fleetd engine benchmark\n\n[Service]\nExecStart=/bin/sleep infinity\n"
SHAPES = [("250m", "256M"), ("500m", "512M"), ("1", "1G"), ("250m", "2G"),
          ("2", "1G"), ("500m", "4G"), ("1", "2G"), ("100m", "128M")]
MIXES = ("plain", "resources")
IN_FLIGHT = 8


def machine_id(index: int) -> str:
    return hashlib.md5(f"bench-machine-{index}".encode()).hexdigest()


def machines(count: int) -> list[Machine]:
    return [Machine(id=machine_id(i), ip=f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
                    metadata={"region": f"r{i % 4}", "rack": f"k{i % 40}"}, capacity=CAPACITY)
            for i in range(count)]


def unit_text(mix: str, index: int) -> str:
    if mix == "plain":
        return BASE
    cpu, memory = SHAPES[index % len(SHAPES)]
    return f"{BASE}\n[X-Fleet]\nCPU={cpu}\nMemory={memory}\n"


def instance(index: int) -> str:
    return f"bench@{index}.service"


async def commit(kv: KV, ops: Sequence[Op]) -> None:
    """Write `ops` in txn-sized batches (`txn_batches`), IN_FLIGHT of them at a time."""
    batches = txn_batches(ops)
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(batch: Sequence[Op]) -> None:
        async with gate:
            await kv.txn((), batch)

    await asyncio.gather(*(one(b) for b in batches))


async def register_machines(kv: KV, keys: Keys, count: int, ttl: int = 600) -> list[str]:
    """Register `count` machines, each on its own lease; return their ids."""
    found = machines(count)
    gate = asyncio.Semaphore(IN_FLIGHT * 4)

    async def grant() -> int:
        async with gate:
            return await kv.grant(ttl)

    leases = await asyncio.gather(*(grant() for _ in found))
    await commit(kv, [Put(keys.machine(m.id), codec.encode_machine(m), lease)
                       for m, lease in zip(found, leases, strict=True)])
    return [m.id for m in found]


def unit_ops(keys: Keys, mix: str, first: int, count: int) -> list[Op]:
    """Files (once per distinct text) and launched unit records for instances first..first+count-1."""
    ops: list[Op] = []
    files: dict[str, str] = {}
    for i in range(first, first + count):
        unitfile = UnitFile.parse(unit_text(mix, i))
        if unitfile.hash not in files:
            files[unitfile.hash] = unitfile.serialize()
            ops.append(Put(keys.file(unitfile.hash), files[unitfile.hash]))
        record = Unit(instance(i), unitfile.hash, TargetState.LAUNCHED)
        ops.append(Put(keys.unit(record.name), codec.encode_unit(record)))
    return ops


async def create_units(kv: KV, keys: Keys, mix: str, count: int) -> None:
    await commit(kv, unit_ops(keys, mix, 1, count))
