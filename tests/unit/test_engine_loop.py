"""Tier 2: the engine alone over the in-memory registry: its model, reads, passes and leadership.

Machines are presence keys on leases (as agents write them); units are created as the API
creates them. A counting KV shows what the leader reads from etcd after it has loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any
from unittest.mock import patch

import pytest
from structlog.testing import capture_logs
from test_loops import eventually, eventually_async  # the waiting helpers tier 2 shares

from fleetd.engine.reconciler import Engine
from fleetd.engine.standing import Standing
from fleetd.model.machine import Machine
from fleetd.model.states import TargetState
from fleetd.model.unit import Unit
from fleetd.model.unitfile import UnitFile
from fleetd.registry.keys import Keys
from fleetd.registry.kv import Listing
from fleetd.registry.memory import MemoryKV
from fleetd.registry.store import MAX_TXN_OPS, Registry

HELLO = UnitFile.parse("[Service]\nExecStart=/bin/sleep 1000\n")
READS = ("get", "get_prefix", "get_prefixes", "count")


class CountingKV:
    """MemoryKV that counts reads and txns."""

    def __init__(self, inner: MemoryKV) -> None:
        self.inner = inner
        self.reads = 0
        self.txns: list[int] = []  # ops per txn

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.inner, name)
        if name in READS:
            async def read(*args: Any) -> Any:
                self.reads += 1
                return await found(*args)
            return read
        return found

    async def get_prefixes(self, prefixes: Sequence[str]) -> list[Listing]:
        self.reads += 1
        return await self.inner.get_prefixes(prefixes)

    async def txn(self, compares: Any, success: Any, failure: Any = ()) -> Any:
        self.txns.append(len(success))
        return await self.inner.txn(compares, success, failure)

    def watch_prefix(self, prefix: str, start_revision: int) -> AsyncIterator[Any]:
        return self.inner.watch_prefix(prefix, start_revision)


class Holder:
    lease = 0


class Rig:
    def __init__(self) -> None:
        self.memory = MemoryKV()
        self.kv = CountingKV(self.memory)
        self.keys = Keys("/e/")
        self.registry = Registry(self.kv, self.keys)  # type: ignore[arg-type]
        self.holder = Holder()
        self.engine = Engine(self.registry, "e" * 32, self.holder, interval=0.05)
        self.task: asyncio.Task[None] | None = None

    async def start(self, machines: int = 3) -> None:
        for i in range(machines):
            mid = f"{i:032x}"
            lease = await self.memory.grant(60)
            await self.registry.register_machine(Machine(mid, f"10.0.0.{i}"), lease)
        self.holder.lease = await self.memory.grant(60)
        self.task = asyncio.create_task(self.engine.run())
        await eventually(lambda: self.engine.model is not None)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def submit(self, names: list[str]) -> None:
        for name in names:
            assert await self.registry.create_unit(Unit(name, HELLO.hash, TargetState.LAUNCHED),
                                                   HELLO.serialize())

    async def placed(self) -> int:
        return await self.memory.count(self.keys.assign)


async def placed_count(rig: Rig, count: int) -> None:
    placed = 0

    async def poll() -> None:
        nonlocal placed
        while placed < count:
            placed = await rig.placed()
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), 5)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    r = Rig()
    yield r
    await r.stop()


async def test_a_burst_is_placed_without_reading_etcd_in_few_full_txns(rig: Rig) -> None:
    await rig.start()
    reads_after_load = rig.kv.reads
    await rig.submit([f"u{i:03d}.service" for i in range(300)])
    await placed_count(rig, 300)
    assert rig.kv.reads - reads_after_load <= 1  # the one shared unit file, fetched once
    engine_txns = [n for n in rig.kv.txns if n > 3]  # unit creates are 2-3 ops each
    assert max(engine_txns) <= MAX_TXN_OPS
    assert len(engine_txns) <= 300 // MAX_TXN_OPS + 2 * 3  # submissions may split the burst


async def test_an_unchanged_model_is_not_scheduled_again(rig: Rig) -> None:
    with patch.object(rig.engine, "_plan", wraps=rig.engine._plan) as spy:  # every pass decides there
        await rig.start()
        await rig.submit(["a.service"])
        await placed_count(rig, 1)
        await asyncio.sleep(0.2)
        calls = spy.call_count
        await asyncio.sleep(0.5)  # ten timer wakes
        assert spy.call_count == calls


async def test_a_machine_that_leaves_has_its_units_moved(rig: Rig) -> None:
    await rig.start(machines=2)
    await rig.submit(["a.service", "b.service"])
    await placed_count(rig, 2)
    first = {a.unit: a.machine for a in await rig.registry.list_assignments()}
    gone = first["a.service"]
    lease = next(kv.lease for kv in (await rig.memory.get_prefix(rig.keys.machines)).items
                 if kv.key.endswith(gone))
    await rig.memory.revoke(lease)

    async def moved() -> bool:
        now = {a.unit: a.machine for a in await rig.registry.list_assignments()}
        return len(now) == 2 and gone not in now.values()

    await eventually_async(moved)


async def test_a_new_leader_rebuilds_from_etcd_then_goes_on_incrementally(rig: Rig) -> None:
    await rig.start()
    await rig.submit([f"u{i}.service" for i in range(6)])
    await placed_count(rig, 6)
    before = {a.unit: a.machine for a in await rig.registry.list_assignments()}
    await rig.stop()  # the leader dies; its key goes with it
    await rig.memory.delete(rig.keys.leader)
    with patch.object(Standing, "start", wraps=Standing.start) as full, \
            patch.object(Standing, "step", autospec=True, side_effect=Standing.step) as incremental:
        rig.engine = Engine(rig.registry, "f" * 32, rig.holder, interval=0.05)
        await rig.start(machines=0)
        await rig.submit(["after.service"])
        await placed_count(rig, 7)
        await asyncio.sleep(0.1)  # the pass that confirms the plan
    after = {a.unit: a.machine for a in await rig.registry.list_assignments()}
    assert full.call_count == 1 and incremental.call_count >= 1
    assert {u: m for u, m in after.items() if u in before} == before and len(after) == 7


async def test_a_full_pass_catches_a_standing_state_gone_wrong(rig: Rig) -> None:
    await rig.start()
    await rig.submit(["a.service"])
    await placed_count(rig, 1)
    await asyncio.sleep(0.1)
    standing = rig.engine.standing
    assert standing is not None
    standing.board.remove("a.service")  # it forgets a placement: it would place a.service again
    standing.unplaced.add("a.service")
    rig.engine.full_every = 0.0  # the next pass is a full one, and checks
    with capture_logs() as logs:
        await rig.submit(["b.service"])
        await placed_count(rig, 2)
        await asyncio.sleep(0.1)
    assert any(e["event"].startswith("incremental engine disagreed") for e in logs)
    assert sorted(a.unit for a in await rig.registry.list_assignments()) == ["a.service", "b.service"]


async def test_leader_steps_down_when_its_key_is_taken_and_campaigns_again(rig: Rig) -> None:
    await rig.start()
    first = rig.engine.token
    await rig.memory.delete(rig.keys.leader)  # e.g. an operator, or the lease expired
    await eventually(lambda: rig.engine.token not in (None, first))
    await rig.submit(["after.service"])
    await placed_count(rig, 1)


async def test_a_compacted_watch_relists_and_nothing_is_missed(rig: Rig) -> None:
    relists: list[str] = []
    relist = rig.engine._relist

    async def spy(model: Any, section: str) -> int:
        relists.append(section)
        return await relist(model, section)

    rig.engine._relist = spy  # type: ignore[method-assign]
    await rig.start()
    rig.memory.fail(True)  # every watch breaks; they retry after a short backoff
    await asyncio.sleep(0.02)
    rig.memory.fail(False)
    await rig.submit(["during.service"])
    await rig.memory.put("/elsewhere", "x")
    rig.memory.compact(rig.memory.revision)  # the history the watches need is gone
    await placed_count(rig, 1)
    assert rig.engine.model is not None and "during.service" in rig.engine.model.units
    assert "units" in relists


async def test_a_candidate_campaigns_only_when_the_watch_shows_no_leader() -> None:
    """With another fleetd leading, a candidate sends no txn at all (a campaign per pass would
    cost every fleetd of a 1,000-host cluster a txn per interval); once the key goes, it leads."""
    memory = MemoryKV()
    kv, keys = CountingKV(memory), Keys("/e/")
    other = await memory.grant(60)
    await Registry(memory, keys).register_machine(Machine("o" * 32, "10.0.0.9"), other)  # type: ignore[arg-type]
    await Registry(memory, keys).campaign("o" * 32, other)  # type: ignore[arg-type]
    holder = Holder()
    holder.lease = await memory.grant(60)
    engine = Engine(Registry(kv, keys), "e" * 32, holder, interval=0.01)  # type: ignore[arg-type]
    task = asyncio.create_task(engine.run())
    try:
        await asyncio.sleep(0.2)  # about 20 intervals
        assert kv.txns == []
        assert kv.reads <= 4  # the listing of the leader key, then the one check that it stands
        await memory.delete(keys.leader)
        await eventually(lambda: engine.token is not None)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
