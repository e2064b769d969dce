"""Forged leader keys: the rule (a table), then engines over the in-memory registry on a
frozen lease clock, so no lease ever expires: whatever replaces a forged key is the engine,
not etcd, and it happens within one lease TTL because no lease time passes at all.

The forgeries are what anyone allowed to write the leader key could put there: a lease-less
value (the attack in issue 17), a value on a lease of the forger's own, a value naming a
live machine but on another lease, and one naming the candidate itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from structlog.testing import capture_logs
from test_loops import eventually

from fleetd.engine.election import forged_because, own_key
from fleetd.engine.reconciler import Engine
from fleetd.model.machine import Machine
from fleetd.model.states import TargetState
from fleetd.model.unit import Unit
from fleetd.model.unitfile import UnitFile
from fleetd.registry.keys import Keys
from fleetd.registry.kv import KeyValue
from fleetd.registry.memory import MemoryKV
from fleetd.registry.store import Registry

ME, OTHER, GHOST = "e" * 32, "o" * 32, "9" * 32
HELLO = UnitFile.parse("[Service]\nExecStart=/bin/sleep 1000\n")


def kv(key: str, value: str, lease: int) -> KeyValue:
    return KeyValue(key, value, create_revision=5, mod_revision=5, lease=lease)


@pytest.mark.parametrize(("leader", "machine", "why"), [
    (None, None, None),
    (kv("leader", OTHER, 7), kv("machines/o", "{}", 7), None),
    (kv("leader", OTHER, 0), kv("machines/o", "{}", 7), "it is on no lease"),
    (kv("leader", GHOST, 7), None, "it names no live machine"),
    (kv("leader", OTHER, 8), kv("machines/o", "{}", 7), "its lease is not the lease of the machine it names"),
    (kv("leader", ME, 7), kv("machines/e", "{}", 7), "it names this machine, whose engine did not campaign"),
])
def test_a_leader_key_stands_only_on_the_lease_of_the_live_machine_it_names(
        leader: KeyValue | None, machine: KeyValue | None, why: str | None) -> None:
    found = forged_because(leader, machine, ME)
    assert found == why if why is None else found is not None and found.startswith(why)


@pytest.mark.parametrize(("leader", "lease", "own"), [
    (kv("leader", ME, 7), 7, True),
    (kv("leader", ME, 8), 7, False),     # this machine's name on some other lease: a forgery
    (kv("leader", OTHER, 7), 7, False),
    (kv("leader", ME, 0), 0, False),     # no lease of its own yet: nothing is its own
    (None, 7, False),
])
def test_a_key_naming_this_engine_on_its_own_lease_is_its_own_campaign(
        leader: KeyValue | None, lease: int, own: bool) -> None:
    assert own_key(leader, ME, lease) is own


class Holder:
    lease = 0


class Candidates:
    """Two engines (ME, OTHER), each on the lease of its own presence key; leases never expire."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.memory = MemoryKV(now=lambda: self.now)
        self.keys = Keys("/e/")
        self.registry = Registry(self.memory, self.keys)
        self.holders = {ME: Holder(), OTHER: Holder()}
        self.engines = {m: Engine(self.registry, m, h, interval=30.0) for m, h in self.holders.items()}
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self, *which: str) -> None:
        for machine in which:
            lease = await self.memory.grant(10)
            await self.registry.register_machine(Machine(machine, "10.0.0.1"), lease)
            self.holders[machine].lease = lease
            self.tasks.append(asyncio.create_task(self.engines[machine].run()))

    def leading(self) -> list[str]:
        return [m for m, e in self.engines.items() if e.token is not None]

    async def leader(self) -> KeyValue | None:
        return await self.memory.get(self.keys.leader)

    async def stop(self) -> None:
        self.memory.fail(True)  # every loop settles in a plain sleep first (see test_loops.quiesce)
        await asyncio.sleep(0.05)
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.fixture
async def two() -> AsyncIterator[Candidates]:
    c = Candidates()
    yield c
    await c.stop()


async def forge(c: Candidates, value: str, lease: int = 0) -> int:
    """Overwrite the leader key as `etcdctl put <prefix>leader VALUE [--lease]` would."""
    return await c.memory.put(c.keys.leader, value, lease)


async def replaced(c: Candidates, forged_at: int) -> KeyValue:
    """Wait (30 s reconcile interval: only the leader watch can wake the engines) for a real
    leader to hold a key written after the forgery."""
    async def real() -> bool:
        found = await c.leader()
        return (found is not None and found.create_revision > forged_at and found.lease != 0
                and c.leading() == [found.value])
    for _ in range(250):
        if await real():
            found = await c.leader()
            assert found is not None
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"forged leader key not replaced: {await c.leader()}, leading {c.leading()}")


async def test_a_lease_less_leader_key_is_replaced_and_logged_and_scheduling_goes_on(two: Candidates) -> None:
    await two.start(ME, OTHER)
    await eventually(lambda: len(two.leading()) == 1)
    with capture_logs() as logs:
        forged_at = await forge(two, "attacker")
        leader = await replaced(two, forged_at)
    assert any(e["event"].startswith("ignoring forged leader key") and e["reason"] == "it is on no lease"
               and e["value"] == "attacker" for e in logs)
    assert leader.lease == two.holders[leader.value].lease
    assert await two.registry.create_unit(Unit("after.service", HELLO.hash, TargetState.LAUNCHED),
                                          HELLO.serialize())

    async def placed() -> bool:
        return await two.memory.count(two.keys.assign) == 1
    for _ in range(250):
        if await placed():
            break
        await asyncio.sleep(0.02)
    assert await placed()


@pytest.mark.parametrize("forgery", ["own lease", "ghost machine", "live machine, other lease", "names me"])
async def test_a_candidate_replaces_a_forged_leader_key(two: Candidates, forgery: str) -> None:
    """Only ME runs; OTHER is a live machine without an engine (its presence key only)."""
    other_lease = await two.memory.grant(10)
    await two.registry.register_machine(Machine(OTHER, "10.0.0.2"), other_lease)
    own = await two.memory.grant(10)  # a lease the forger granted itself
    value, lease = {"own lease": (OTHER, own), "ghost machine": (GHOST, own),
                    "live machine, other lease": (OTHER, own), "names me": (ME, own)}[forgery]
    forged_at = await forge(two, value, lease)
    await two.start(ME)
    leader = await replaced(two, forged_at)
    assert leader.value == ME


async def test_a_real_leader_is_left_alone_by_the_other_candidate(two: Candidates) -> None:
    await two.start(ME)
    await eventually(lambda: two.leading() == [ME])
    first = await two.leader()
    await two.start(OTHER)
    await asyncio.sleep(0.3)
    assert await two.leader() == first and two.leading() == [ME]


async def test_a_campaign_whose_reply_was_lost_is_taken_up_not_replaced(two: Candidates) -> None:
    """etcd applied ME's campaign txn but the reply never came (a deadline that ran out): the
    key names ME on ME's lease. ME leads on it, with its create revision as the token."""
    lease = await two.memory.grant(10)
    await two.registry.register_machine(Machine(ME, "10.0.0.1"), lease)
    two.holders[ME].lease = lease
    written = await two.memory.put(two.keys.leader, ME, lease)
    with capture_logs() as logs:
        two.tasks.append(asyncio.create_task(two.engines[ME].run()))
        await eventually(lambda: two.engines[ME].token is not None)
    assert two.engines[ME].token == written
    leader = await two.leader()
    assert leader is not None and leader.create_revision == written
    assert not any(e["event"].startswith("ignoring forged leader key") for e in logs)
    assert any(e["event"] == "engine leadership acquired" and e["how"].startswith("own key") for e in logs)
