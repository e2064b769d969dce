"""Tier 2: several fleetd nodes (heart, engine, agent, publisher) over one in-memory registry.

Each node is wired by `fleetd.server.assemble`, exactly as the daemon wires itself, but with
MemoryKV for etcd and FakeUnitManager for systemd. The last part runs one agent alone (no
engine: the test writes its assignments) and counts what it reads from and writes to etcd.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

import pytest

from fleetd.model.machine import Machine
from fleetd.model.requirements import parse_requirements
from fleetd.model.resources import Resources
from fleetd.model.states import TargetState
from fleetd.model.unit import Assignment, Unit
from fleetd.model.unitfile import UnitFile
from fleetd.registry.keys import Keys
from fleetd.registry.kv import Compare, KeyValue, Listing, Op, Put, TxnResult
from fleetd.registry.memory import MemoryKV
from fleetd.registry.store import Registry
from fleetd.server import Node, assemble
from fleetd.systemd.memory import FakeUnitManager

HELLO = "[Unit]\nDescription=hello\n[Service]\nExecStart=/bin/sleep 1000\n"


class Cluster:
    def __init__(self, names: list[str]) -> None:
        self.kv = MemoryKV()
        self.registry = Registry(self.kv, Keys("/test/"))
        self.systemd = {n: FakeUnitManager() for n in names}
        self.nodes: dict[str, Node] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.stops: dict[str, asyncio.Event] = {}
        for n in names:
            self.boot(n)

    def machine_id(self, name: str) -> str:
        return (name * 32)[:32].encode().hex()[:32]

    def boot(self, name: str, metadata: dict[str, str] | None = None) -> None:
        self.systemd.setdefault(name, FakeUnitManager())
        machine = Machine(id=self.machine_id(name), ip=f"10.0.0.{len(self.nodes) + 1}",
                          metadata=metadata or {"host": name},
                          capacity=Resources(cpu=2000, memory=4 << 30))
        node = assemble(self.registry, self.systemd[name], machine, agent_ttl=2,
                        reconcile_interval=0.2, run_engine=True)
        self.nodes[name] = node
        self.stops[name] = asyncio.Event()
        self.tasks[name] = asyncio.create_task(self._run(name, node))

    async def _run(self, name: str, node: Node) -> None:
        await self.systemd[name].connect()
        await node.run(self.stops[name])

    async def kill(self, name: str) -> None:
        """The host dies: its loops stop and its lease expires at once."""
        await cancel(self.tasks[name])
        await self.kv.revoke(self.nodes[name].heart.lease)

    async def shutdown(self) -> None:
        await quiesce(self.kv)
        for task in self.tasks.values():
            await cancel(task)

    async def submit(self, name: str, text: str, desired: TargetState) -> None:
        unit_file = UnitFile.parse(text)
        is_global = parse_requirements(name, unit_file).is_global
        assert await self.registry.create_unit(
            Unit(name=name, hash=unit_file.hash, desired=desired, is_global=is_global),
            unit_file.serialize())

    def running(self, unit: str) -> list[str]:
        return [n for n, sd in self.systemd.items()
                if n in self.tasks and not self.tasks[n].done()
                and unit in sd.files and sd.state_of(unit).active == "active"]


async def cancel(task: asyncio.Task[None]) -> None:
    """Cancel `task` until it ends (see `quiesce` for why once may not be enough)."""
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.1)


async def quiesce(kv: MemoryKV) -> None:
    """Take the registry down so that every loop settles in a plain sleep before the teardown.

    On Python 3.11, asyncio.wait_for (under Wakeup.wait and MemoryKV's watch) swallows a
    cancellation that arrives together with the event it waits for, and every write to
    MemoryKV wakes every watch: cancelling busy loops could leave one running forever.
    """
    kv.fail(True)
    await asyncio.sleep(0.05)


async def eventually(check: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.02)


async def eventually_async(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.02)


async def _no_states(cluster: Cluster, unit: str) -> bool:
    return await cluster.registry.list_states(unit) == []


@pytest.fixture
async def cluster():
    c = Cluster(["a", "b", "c"])
    yield c
    await asyncio.wait_for(c.shutdown(), 5)


async def test_started_unit_runs_on_exactly_one_machine(cluster: Cluster) -> None:
    await cluster.submit("hello.service", HELLO, TargetState.LAUNCHED)
    await eventually(lambda: len(cluster.running("hello.service")) == 1)
    await asyncio.sleep(0.5)
    assert len(cluster.running("hello.service")) == 1
    states = await cluster.registry.list_states("hello.service")
    assert [(s.state, s.systemd.active) for s in states] == [(TargetState.LAUNCHED, "active")]


async def test_stop_keeps_file_unload_removes_it(cluster: Cluster) -> None:
    await cluster.submit("hello.service", HELLO, TargetState.LAUNCHED)
    await eventually(lambda: len(cluster.running("hello.service")) == 1)
    (host,) = cluster.running("hello.service")
    await cluster.registry.set_desired("hello.service", TargetState.LOADED)
    sd = cluster.systemd[host]
    await eventually(lambda: sd.state_of("hello.service").active == "inactive")
    assert "hello.service" in sd.files
    await cluster.registry.set_desired("hello.service", TargetState.INACTIVE)
    await eventually(lambda: "hello.service" not in sd.files)
    await eventually_async(lambda: _no_states(cluster, "hello.service"))


async def test_destroyed_unit_leaves_every_host(cluster: Cluster) -> None:
    await cluster.submit("hello.service", HELLO, TargetState.LAUNCHED)
    await eventually(lambda: len(cluster.running("hello.service")) == 1)
    await cluster.registry.delete_unit("hello.service")
    await eventually(lambda: all("hello.service" not in sd.files
                                 for sd in cluster.systemd.values()))
    await eventually_async(lambda: _no_states(cluster, "hello.service"))
    assert await cluster.registry.list_assignments() == []


async def test_unit_moves_when_its_machine_dies(cluster: Cluster) -> None:
    await cluster.submit("hello.service", HELLO, TargetState.LAUNCHED)
    await eventually(lambda: len(cluster.running("hello.service")) == 1)
    (first,) = cluster.running("hello.service")
    await cluster.kill(first)
    await eventually(lambda: len(cluster.running("hello.service")) == 1)
    (second,) = cluster.running("hello.service")
    assert second != first
    machines = {m.id for m in await cluster.registry.list_machines()}
    assert cluster.machine_id(first) not in machines


async def test_new_leader_places_units_after_leader_dies(cluster: Cluster) -> None:
    await eventually(lambda: any(n.engine and n.engine.token for n in cluster.nodes.values()))
    leader = next(n for n, node in cluster.nodes.items() if node.engine and node.engine.token)
    await cluster.kill(leader)
    await cluster.submit("after.service", HELLO, TargetState.LAUNCHED)
    await eventually(lambda: len(cluster.running("after.service")) == 1)
    assert await cluster.registry.leader() not in (None, cluster.machine_id(leader))


async def test_metadata_pins_unit_to_matching_machine(cluster: Cluster) -> None:
    text = HELLO + "[X-Fleet]\nMachineMetadata=host=b\n"
    await cluster.submit("pinned.service", text, TargetState.LAUNCHED)
    await eventually(lambda: cluster.running("pinned.service") == ["b"])


async def test_deposed_leader_cannot_write(cluster: Cluster) -> None:
    await eventually(lambda: any(n.engine and n.engine.token for n in cluster.nodes.values()))
    name, node = next((n, x) for n, x in cluster.nodes.items() if x.engine and x.engine.token)
    stale = node.engine.token  # type: ignore[union-attr]
    await cluster.kill(name)
    await eventually(lambda: any(x.engine and x.engine.token for n, x in cluster.nodes.items()
                                 if n != name))
    from fleetd.errors import Fenced
    with pytest.raises(Fenced):
        await cluster.registry.commit(stale or 0, [cluster.registry.evict_op("x", "y")])


async def test_restarted_fleetd_reports_its_running_unit_launched(cluster: Cluster) -> None:
    await cluster.submit("hello.service", HELLO, TargetState.LAUNCHED)
    await eventually(lambda: len(cluster.running("hello.service")) == 1)
    (host,) = cluster.running("hello.service")
    await cancel(cluster.tasks[host])  # fleetd stops; its lease, the unit and its file stay
    calls_before = len(cluster.systemd[host].calls)
    cluster.boot(host)

    async def launched_again() -> bool:
        states = await cluster.registry.list_states("hello.service")
        return [(s.machine, s.state) for s in states] == [
            (cluster.machine_id(host), TargetState.LAUNCHED)]

    await eventually_async(launched_again)
    restarts = [c for c in cluster.systemd[host].calls[calls_before:] if c[0] in ("start", "stop")]
    assert restarts == []  # the running unit was neither restarted nor stopped


async def test_a_loaded_unit_something_else_starts_keeps_running(cluster: Cluster) -> None:
    """The service a timer starts is only loaded by fleet: the agent must not stop it."""
    await cluster.submit("job.service", HELLO, TargetState.LOADED)
    await eventually(lambda: any("job.service" in sd.files for sd in cluster.systemd.values()))
    host = next(n for n, sd in cluster.systemd.items() if "job.service" in sd.files)
    sd = cluster.systemd[host]
    await sd.start("job.service")  # the timer fires
    for _ in range(2):
        await cluster.nodes[host].agent.reconcile()
    assert sd.state_of("job.service").active == "active"
    assert ("stop", "job.service") not in sd.calls


async def test_global_unit_runs_where_metadata_matches_and_on_late_joiners(cluster: Cluster) -> None:
    text = HELLO + "[X-Fleet]\nGlobal=true\nMachineMetadata=host!=b\n"
    await cluster.submit("everywhere.service", text, TargetState.LAUNCHED)
    await eventually(lambda: sorted(cluster.running("everywhere.service")) == ["a", "c"])
    cluster.boot("d")
    await eventually(lambda: sorted(cluster.running("everywhere.service")) == ["a", "c", "d"])
    assert await cluster.registry.list_assignments() == []  # the engine never placed it
    await cluster.registry.delete_unit("everywhere.service")
    await eventually(lambda: cluster.running("everywhere.service") == [])


async def test_unit_conflicting_with_a_global_unit_goes_where_it_does_not_run(cluster: Cluster) -> None:
    text = HELLO + "[X-Fleet]\nGlobal=true\nMachineMetadata=host in (a, b)\n"
    await cluster.submit("agent.service", text, TargetState.LAUNCHED)
    await eventually(lambda: sorted(cluster.running("agent.service")) == ["a", "b"])
    lone = HELLO + "[X-Fleet]\nConflicts=agent.service\n"
    await cluster.submit("lone.service", lone, TargetState.LAUNCHED)
    await eventually(lambda: cluster.running("lone.service") == ["c"])


async def test_pending_reason_is_recorded_and_cleared(cluster: Cluster) -> None:
    text = HELLO + "[X-Fleet]\nMemory=64T\n"
    await cluster.submit("huge.service", text, TargetState.LAUNCHED)

    async def reason() -> bool:
        found = (await cluster.registry.list_pending()).get("huge.service", "")
        return found.startswith("insufficient memory: needs 64T")

    await eventually_async(reason)
    await cluster.registry.set_desired("huge.service", TargetState.INACTIVE)
    await eventually_async(lambda: _no_pending(cluster))


async def _no_pending(cluster: Cluster) -> bool:
    return await cluster.registry.list_pending() == {}


# One agent alone: the test plays the engine and writes assign/<id>/ itself -----------------


class CountingKV(MemoryKV):
    """MemoryKV that remembers the reads it served and the txns that wrote states/."""

    def __init__(self) -> None:
        super().__init__()
        self.listed: list[str] = []
        self.read: list[str] = []
        self.state_txns: list[int] = []

    async def get_prefix(self, prefix: str) -> Listing:
        self.listed.append(prefix)
        return await super().get_prefix(prefix)

    async def get(self, key: str) -> KeyValue | None:
        self.read.append(key)
        return await super().get(key)

    async def txn(self, compares: Sequence[Compare], success: Sequence[Op],
                  failure: Sequence[Op] = ()) -> TxnResult:
        ops = sum(1 for op in success if "/states/" in op.key)
        if ops:
            self.state_txns.append(ops)
        return await super().txn(compares, success, failure)


class Solo:
    """One fleetd without an engine (heart, agent, publisher) over CountingKV and a fake systemd."""

    def __init__(self) -> None:
        self.kv = CountingKV()
        self.registry = Registry(self.kv, Keys("/test/"))
        self.systemd = FakeUnitManager()
        self.machine = Machine(id="5" * 32, ip="10.0.0.5", metadata={"host": "solo"})
        self.node = assemble(self.registry, self.systemd, self.machine, agent_ttl=5,
                             reconcile_interval=1, run_engine=False)
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.systemd.connect()
        self.task = asyncio.create_task(self.node.run(self.stop))
        await eventually(lambda: self.node.agent.assigned.ready.is_set())

    async def assign(self, desired: TargetState, *names: str) -> None:
        """Place units here in one txn, with their files, as the engine would."""
        ops: list[Op] = []
        for name in names:
            unit_file = UnitFile.parse(HELLO.replace("hello", name))
            ops.append(Put(self.registry.keys.file(unit_file.hash), unit_file.serialize()))
            ops.append(self.registry.place_op(Assignment(name, self.machine.id, unit_file.hash, desired)))
        await self.kv.txn((), ops)

    async def unassign(self, *names: str) -> None:
        await self.kv.txn((), [self.registry.evict_op(n, self.machine.id) for n in names])

    def running(self) -> set[str]:
        return {n for n in self.systemd.files if self.systemd.state_of(n).active == "active"}

    async def states(self) -> dict[str, str]:
        return {s.name: s.systemd.active for s in await self.registry.list_states()}

    def listings_of_own_prefixes(self) -> int:
        keys = self.registry.keys
        return sum(p in (keys.assigned_to(self.machine.id), keys.globals) for p in self.kv.listed)


@pytest.fixture
async def solo():
    s = Solo()
    await s.start()
    yield s
    assert s.task is not None
    await quiesce(s.kv)
    await cancel(s.task)


async def test_agent_follows_its_watches_without_listing_or_reading_again(solo: Solo) -> None:
    await solo.assign(TargetState.LAUNCHED, "a.service", "b.service")
    await eventually(lambda: solo.running() == {"a.service", "b.service"})
    await solo.assign(TargetState.LAUNCHED, "c.service")
    await solo.assign(TargetState.LOADED, "b.service")
    await solo.unassign("a.service")
    await eventually(lambda: solo.running() == {"c.service"} and set(solo.systemd.files) == {"b.service",
                                                                                             "c.service"})
    assert solo.listings_of_own_prefixes() == 2  # assign/<id>/ and global/, once each, at start
    files = [k for k in solo.kv.read if "/files/" in k]
    assert len(files) == len(set(files)) == 3  # each unit file fetched once, when first seen


async def test_publisher_writes_a_burst_of_starts_in_one_txn(solo: Solo) -> None:
    names = [f"burst{i:02d}.service" for i in range(50)]
    await solo.assign(TargetState.LAUNCHED, *names)
    await eventually_async(lambda: _all_active(solo, names))
    await asyncio.sleep(0.2)  # later passes find nothing new to write
    assert solo.kv.state_txns == [50]


async def test_publisher_splits_a_big_burst_into_txns_of_at_most_128_ops(solo: Solo) -> None:
    names = [f"big{i:03d}.service" for i in range(300)]
    await solo.assign(TargetState.LAUNCHED, *names)
    await eventually_async(lambda: _all_active(solo, names))
    await asyncio.sleep(0.2)
    assert sorted(solo.kv.state_txns) == [44, 128, 128]


async def test_deleted_assignment_unloads_the_unit_and_its_state(solo: Solo) -> None:
    await solo.assign(TargetState.LAUNCHED, "a.service")
    await eventually_async(lambda: _all_active(solo, ["a.service"]))
    await solo.unassign("a.service")
    await eventually(lambda: solo.systemd.files == {})
    await eventually_async(lambda: _no_states_at_all(solo))
    assert ("unload", "a.service") in solo.systemd.calls
    assert solo.listings_of_own_prefixes() == 2


async def test_agent_lists_again_after_its_watch_was_compacted(solo: Solo) -> None:
    await solo.assign(TargetState.LAUNCHED, "a.service", "b.service")
    await eventually(lambda: solo.running() == {"a.service", "b.service"})
    solo.kv.fail(True)  # the watches break, and resume only after a backoff of ~0.1 s
    await asyncio.sleep(0.01)
    solo.kv.fail(False)
    await solo.unassign("a.service")  # missed by the broken watch ...
    await solo.kv.put("/test/other", "x")
    solo.kv.compact(solo.kv.revision)  # ... and compacted away before it resumes
    await eventually(lambda: solo.running() == {"b.service"} and "a.service" not in solo.systemd.files)
    assert solo.node.agent.assigned.listings == 2


async def test_corrupt_assignment_is_ignored_and_the_rest_still_runs(solo: Solo) -> None:
    await solo.kv.put(solo.registry.keys.assignment(solo.machine.id, "bad.service"), "{not json")
    await solo.assign(TargetState.LAUNCHED, "a.service")
    await eventually(lambda: solo.running() == {"a.service"})
    assert "bad.service" not in solo.systemd.files


async def _all_active(solo: Solo, names: list[str]) -> bool:
    states = await solo.states()
    return all(states.get(n) == "active" for n in names)


async def _no_states_at_all(solo: Solo) -> bool:
    return await solo.states() == {}
