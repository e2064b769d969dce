"""Tier 2: the engine and vanished machines over the in-memory registry, on a fake clock.

Settling, the fence grace for AtMostOnce units, and the mass-failure brake: its alarm in the
registry, release when machines return or when an operator deletes the alarm, and a new leader
that goes on braking.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest
from test_loops import eventually_async

from fleetd.engine.reconciler import Engine
from fleetd.model.liveness import Liveness
from fleetd.model.machine import Machine
from fleetd.model.states import TargetState
from fleetd.model.unit import Unit
from fleetd.model.unitfile import UnitFile
from fleetd.registry.keys import Keys
from fleetd.registry.memory import MemoryKV
from fleetd.registry.store import Registry

PLAIN = UnitFile.parse("[Service]\nExecStart=/bin/sleep 1000\n")
FENCED = UnitFile.parse("[Service]\nExecStart=/bin/sleep 1000\n[X-Fleet]\nAtMostOnce=true\n")
TIMING = Liveness(agent_ttl=5, fence_grace=3)  # settle 1.5 s; AtMostOnce units wait 3 s


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Holder:
    lease = 0


class Rig:
    def __init__(self) -> None:
        self.kv = MemoryKV()
        self.keys = Keys("/b/")
        self.registry = Registry(self.kv, self.keys)
        self.clock = Clock()
        self.leases: dict[str, int] = {}
        self.tasks: list[asyncio.Task[None]] = []

    def engine(self, name: str = "e") -> Engine:
        return Engine(self.registry, name * 32, Holder(), 0.02, timing=TIMING, clock=self.clock)

    async def start(self, machines: int) -> Engine:
        for i in range(machines):
            await self.add_machine(f"m{i}")
        return await self.lead(self.engine())

    async def lead(self, engine: Engine) -> Engine:
        engine.lease.lease = await self.kv.grant(600)
        self.tasks.append(asyncio.create_task(engine.run()))
        await eventually_async(self._has_model(engine))
        return engine

    @staticmethod
    def _has_model(engine: Engine):  # type: ignore[no-untyped-def]
        async def check() -> bool:
            return engine.model is not None
        return check

    async def add_machine(self, name: str) -> None:
        lease = await self.kv.grant(600)
        self.leases[name] = lease
        await self.registry.register_machine(Machine(mid(name), "10.0.0.1"), lease)

    async def kill(self, *names: str) -> None:
        """The machines vanish together; the engine notices at the current (fake) time."""
        for name in names:
            await self.kv.revoke(self.leases.pop(name))
        await self.settle()

    async def submit(self, names: list[str], unitfile: UnitFile = PLAIN) -> None:
        for name in names:
            assert await self.registry.create_unit(Unit(name, unitfile.hash, TargetState.LAUNCHED),
                                                   unitfile.serialize())

    async def where(self) -> dict[str, str]:
        return {a.unit: name_of(a.machine) for a in await self.registry.list_assignments()}

    async def settle(self) -> None:
        await asyncio.sleep(0.2)  # ten passes at the engine's 20 ms interval

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def mid(name: str) -> str:
    return f"{int(name[1:]) + 1:032x}"


def name_of(machine_id: str) -> str:
    return f"m{int(machine_id, 16) - 1}"


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    r = Rig()
    yield r
    await r.stop()


async def placed(rig: Rig, count: int) -> dict[str, str]:
    async def enough() -> dict[str, str] | None:
        found = await rig.where()
        return found if len(found) == count else None
    await eventually_async(enough)
    return await rig.where()


async def test_units_of_a_vanished_machine_move_only_after_settling(rig: Rig) -> None:
    await rig.start(machines=5)
    await rig.submit([f"u{i}.service" for i in range(10)])
    before = await placed(rig, 10)
    victim = before["u0.service"]
    await rig.kill(victim)
    await rig.settle()
    assert await rig.where() == before  # 1.5 s of settling have not passed on the clock
    rig.clock.now += 1.6
    after = await eventually_moved(rig, victim)
    assert {u for u, m in before.items() if m != victim} <= {u for u in after if after[u] == before[u]}


async def eventually_moved(rig: Rig, victim: str) -> dict[str, str]:
    async def moved() -> dict[str, str] | None:
        now = await rig.where()
        return now if len(now) == 10 and victim not in now.values() else None
    await eventually_async(moved)
    return await rig.where()


async def test_at_most_once_units_wait_for_the_fence_grace(rig: Rig) -> None:
    await rig.start(machines=5)
    await rig.submit(["plain.service"])
    await rig.submit(["fenced.service"], FENCED)
    first = await placed(rig, 2)
    await rig.kill(first["plain.service"], first["fenced.service"])
    rig.clock.now += 1.6  # settled: ordinary units go, AtMostOnce ones wait out the grace
    await rig.settle()
    now = await rig.where()
    assert now["plain.service"] != first["plain.service"]
    assert now.get("fenced.service") == first["fenced.service"]
    rig.clock.now += 1.5
    await rig.settle()
    assert (await rig.where()).get("fenced.service") not in (None, first["fenced.service"])


async def test_three_of_five_vanishing_brakes_and_raises_the_alarm(rig: Rig) -> None:
    await rig.start(machines=5)
    await rig.submit([f"u{i}.service" for i in range(20)])
    before = await placed(rig, 20)
    await rig.kill("m0", "m1", "m2")
    rig.clock.now += 10
    await rig.settle()
    assert await rig.where() == before  # nothing moved
    alarms = await rig.registry.list_alarms()
    record = json.loads(alarms["mass-failure"])
    assert sorted(name_of(m) for m in record["machines"]) == ["m0", "m1", "m2"]
    assert "3 of 5 machines vanished" in record["message"]
    pending = await rig.registry.list_pending()
    assert {u for u, m in before.items() if m in ("m0", "m1", "m2")} == set(pending)

    await rig.add_machine("m0")  # one returns: two of five gone is an ordinary failure
    await rig.settle()
    assert "mass-failure" not in await rig.registry.list_alarms()
    after = await rig.where()
    assert not {"m1", "m2"} & set(after.values()) and len(after) == 20
    assert await rig.registry.list_pending() == {}


async def test_an_operator_confirms_and_the_units_move(rig: Rig) -> None:
    await rig.start(machines=5)
    await rig.submit([f"u{i}.service" for i in range(10)])
    await placed(rig, 10)
    await rig.kill("m0", "m1", "m2")
    rig.clock.now += 10
    await rig.settle()
    assert "mass-failure" in await rig.registry.list_alarms()
    assert await rig.registry.clear_alarm("mass-failure")
    await rig.settle()
    after = await rig.where()
    assert set(after.values()) <= {"m3", "m4"} and len(after) == 10
    assert "mass-failure" not in await rig.registry.list_alarms()


async def test_a_new_leader_goes_on_braking(rig: Rig) -> None:
    first = await rig.start(machines=5)
    await rig.submit([f"u{i}.service" for i in range(10)])
    before = await placed(rig, 10)
    await rig.kill("m0", "m1", "m2")
    rig.clock.now += 10
    await rig.settle()
    await rig.stop()  # the leader dies; its key goes with its lease
    await rig.kv.revoke(first.lease.lease)
    rig.tasks.clear()
    await rig.lead(rig.engine("f"))
    rig.clock.now += 30
    await rig.settle()
    assert await rig.where() == before
    assert "mass-failure" in await rig.registry.list_alarms()
