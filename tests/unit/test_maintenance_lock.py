"""The maintenance lock: the semaphore in the registry (fake time), the keeper that renews it,
and fleetctl drain --lock / unlock / uncordon over three in-memory fleetd nodes, with the bad
input of every new verb in one table."""

from __future__ import annotations

import asyncio

from test_fleetctl_lifecycle import Rig, rig  # noqa: F401  (the fixture)
from test_loops import HELLO

from fleetd.agent.maintenance import LockKeeper
from fleetd.model.states import TargetState
from fleetd.registry import maintenance
from fleetd.registry.keys import Keys
from fleetd.registry.memory import MemoryKV
from fleetd.registry.store import Registry

A, B, C = ("a" * 32, "b" * 32, "c" * 32)


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_semaphore_holds_at_most_n_and_a_holder_keeps_its_slot() -> None:
    registry = Registry(MemoryKV(), Keys("/t/"))
    assert (await maintenance.acquire(registry, A, 1, 60, "t0"))[0]
    assert (await maintenance.acquire(registry, A, 1, 60, "t1"))[0]  # held already
    got, holders = await maintenance.acquire(registry, B, 1, 60, "t2")
    assert not got and [h.machine for h in holders] == [A]
    assert (await maintenance.acquire(registry, B, 2, 60, "t3"))[0]  # a second slot
    assert not (await maintenance.acquire(registry, C, 2, 60, "t4"))[0]
    assert await maintenance.release(registry, A) and not await maintenance.release(registry, A)
    assert (await maintenance.acquire(registry, C, 1, 60, "t5"))[0]


async def test_the_keeper_renews_the_slot_and_a_dead_holder_frees_it_after_the_ttl() -> None:
    clock = Clock()
    registry = Registry(MemoryKV(now=clock), Keys("/t/"))
    assert (await maintenance.acquire(registry, A, 1, 60, "t0"))[0]
    keeper = LockKeeper(registry, A, 60)
    for _ in range(4):  # 4 x 40 s > the TTL: only the renewals keep it
        clock.now += 40
        assert await keeper.keep()
    assert [h.machine for h in await maintenance.holders(registry)] == [A]
    clock.now += 61  # the holder stopped renewing (its host is gone)
    assert await maintenance.holders(registry) == []
    assert (await maintenance.acquire(registry, B, 1, 60, "t1"))[0]


async def test_drain_lock_waits_for_the_lock_and_uncordon_gives_it_back(rig: Rig) -> None:  # noqa: F811
    first = await rig.fleetctl("drain", rig.mid("b"), "--lock", "--wait", "--timeout", "20")
    assert first.code == 0 and f"Maintenance lock taken by machine {rig.mid('b')[:8]}" in first.out
    second = asyncio.create_task(rig.fleetctl("drain", rig.mid("c"), "--lock", "--timeout", "20"))
    await asyncio.sleep(1.0)
    assert not second.done()  # waiting for b's slot
    back = await rig.fleetctl("uncordon", rig.mid("b"))
    assert f"Maintenance lock of machine {rig.mid('b')[:8]} released" in back.out
    done = await second
    assert done.code == 0 and "waiting for the maintenance lock: maintenance lock busy" in done.out
    assert (await rig.states())[rig.mid("c")] in ("draining", "drained")


async def test_concurrent_locked_drains_let_one_through(rig: Rig) -> None:  # noqa: F811
    runs = await asyncio.gather(*(rig.fleetctl("drain", rig.mid(n), "--lock", "--timeout", "3")
                                  for n in "bc"))
    assert sorted(r.code for r in runs) == [0, 1]
    loser = next(r for r in runs if r.code == 1)
    assert "the maintenance lock was not free within 3 s (--timeout)" in loser.err
    states = await rig.states()
    assert sorted(states.values()).count("ready") == 2  # the loser changed nothing
    both = await asyncio.gather(*(rig.fleetctl("drain", rig.mid(n), "--lock", "--max-parallel", "2",
                                               "--timeout", "3") for n in "bc"))
    assert [r.code for r in both] == [0, 0]


async def test_a_lost_holder_is_unlocked_by_hand(rig: Rig) -> None:  # noqa: F811
    assert (await rig.fleetctl("drain", rig.mid("b"), "--lock")).code == 0
    await rig.cluster.kill("b")  # it will not come back; its lock lease stays for the TTL
    late = await rig.fleetctl("drain", rig.mid("c"), "--lock", "--timeout", "1")
    assert late.code == 1 and f"held by {rig.mid('b')[:8]}" in late.err
    freed = await rig.fleetctl("unlock", rig.mid("b")[:6])  # resolved among the lock holders
    assert (freed.code, freed.out) == (0, f"Maintenance lock of machine {rig.mid('b')[:8]} released\n")
    assert (await rig.fleetctl("drain", rig.mid("c"), "--lock", "--timeout", "5")).code == 0


async def test_bad_input_of_every_new_verb(rig: Rig) -> None:  # noqa: F811
    await rig.cluster.submit("g.service", HELLO + "[X-Fleet]\nGlobal=true\n", TargetState.LAUNCHED)
    await rig.start("u.service")
    assert (await rig.fleetctl("drain", rig.mid("c"))).code == 0
    cases = [
        (("cordon", "ffff"), 1, "no machine matches 'ffff'"),
        (("drain", "zz"), 1, "is not a machine id"),
        (("uncordon", "6"), 1, "is ambiguous"),
        (("unlock", "ffff"), 1, "no machine matches"),
        (("unlock", rig.mid("a")), 1, "holds no maintenance lock"),
        (("drain",), 1, "give exactly one of MACHINE or --self"),
        (("unlock", "--self", rig.mid("a")), 1, "give exactly one of MACHINE or --self"),
        (("drain", rig.mid("a"), "--lock", "--max-parallel", "0"), 1,
         "maxParallel must be a whole number from 1 to 64"),
        (("move", "ghost"), 1, "unit does not exist"),
        (("move", "g"), 1, "is global"),
        (("move", "u", "ffff"), 1, "no machine matches"),
        (("move", "u", rig.mid("c")), 1, "is draining"),
        (("drain", rig.mid("c")), 0, "is already draining"),
        (("cordon", rig.mid("c")), 1, "is draining; uncordon it first"),
        (("uncordon", rig.mid("a")), 0, "is already ready (not cordoned)"),
    ]
    for argv, code, message in cases:
        run = await rig.fleetctl(*argv)
        assert run.code == code and message in run.out + run.err, (argv, run)
    assert await maintenance.holders(rig.cluster.registry) == []


async def test_uncordon_if_locked_acts_only_for_a_lock_holder(rig: Rig) -> None:  # noqa: F811
    await rig.fleetctl("drain", "--self")
    left = await rig.fleetctl("uncordon", "--self", "--if-locked")
    assert left.out == f"Machine {rig.mid('a')[:8]} holds no maintenance lock: left draining\n"
    assert (await rig.states())[rig.mid("a")] in ("draining", "drained")
    await rig.fleetctl("drain", "--self", "--lock")
    back = await rig.fleetctl("uncordon", "--self", "--if-locked")
    assert "uncordoned (was" in back.out and "Maintenance lock of machine" in back.out
    assert (await rig.states())[rig.mid("a")] == "ready"
