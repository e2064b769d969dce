"""Forged leader keys on a real etcd: two engines on leases of their own presence keys; an
attacker (another client) overwrites the leader key without a lease, or on a lease of its
own. The engines delete the forgery and one of them leads again, on its machine's lease,
before that lease (5 s TTL, never kept alive here) could run out; a unit submitted afterwards
is placed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from fleetd.engine.reconciler import Engine
from fleetd.model.machine import Machine
from fleetd.model.states import TargetState
from fleetd.model.unit import Unit
from fleetd.model.unitfile import UnitFile
from fleetd.registry.etcd import EtcdKV
from fleetd.registry.keys import Keys, normalize_prefix
from fleetd.registry.kv import KeyValue
from fleetd.registry.store import Registry

pytestmark = pytest.mark.etcd

TTL = 5
HELLO = UnitFile.parse("[Service]\nExecStart=/bin/sleep 1000\n")


class Holder:
    lease = 0


@dataclass
class Rig:
    registry: Registry
    attacker: EtcdKV
    holders: dict[str, Holder]
    engines: dict[str, Engine]

    def leading(self) -> list[str]:
        return [m for m, e in self.engines.items() if e.token is not None]

    async def leader(self) -> KeyValue | None:
        return await self.registry.kv.get(self.registry.keys.leader)


@pytest.fixture
async def rig(etcd) -> AsyncIterator[Rig]:
    keys = Keys(normalize_prefix(f"/forged-{uuid.uuid4().hex[:8]}"))
    kv, attacker = EtcdKV(etcd.endpoints), EtcdKV(etcd.endpoints)
    registry = Registry(kv, keys)
    holders = {m: Holder() for m in ("a" * 32, "b" * 32)}
    for i, (machine, holder) in enumerate(holders.items()):
        holder.lease = await kv.grant(TTL)
        await registry.register_machine(Machine(machine, f"10.0.0.{i + 1}"), holder.lease)
    engines = {m: Engine(registry, m, h, interval=30.0) for m, h in holders.items()}
    tasks = [asyncio.create_task(e.run()) for e in engines.values()]
    yield Rig(registry, attacker, holders, engines)
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    for holder in holders.values():
        await kv.revoke(holder.lease)
    await kv.close()
    await attacker.close()


async def until(check, what: str, timeout: float = TTL) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.02)


async def real_leader_after(rig: Rig, revision: int) -> bool:
    found = await rig.leader()
    return (found is not None and found.create_revision > revision
            and rig.leading() == [found.value] and found.lease == rig.holders[found.value].lease)


@pytest.mark.parametrize("forgery", ["no lease", "the attacker's own lease"])
async def test_a_forged_leader_key_is_replaced_by_a_real_leader_before_a_lease_ttl(
        rig: Rig, forgery: str) -> None:
    async def one_leader() -> bool:
        return len(rig.leading()) == 1
    await until(one_leader, "a first leader")
    lease = await rig.attacker.grant(60) if forgery != "no lease" else 0
    forged_at = await rig.attacker.put(rig.registry.keys.leader, "intruder", lease)
    await until(lambda: real_leader_after(rig, forged_at), "a real leader after the forgery")
    for holder in rig.holders.values():  # no lease ran out meanwhile: the engines replaced it
        assert await rig.registry.kv.refresh(holder.lease) > 0
    assert await rig.registry.create_unit(Unit("after.service", HELLO.hash, TargetState.LAUNCHED),
                                          HELLO.serialize())

    async def placed() -> bool:
        return await rig.registry.kv.count(rig.registry.keys.assign) == 1
    await until(placed, "the unit submitted after the forgery placed")
