"""Tier 2: several fleetd nodes (heart, engine, agent, publisher) over one in-memory registry.

Each node is wired by `fleetd.server.assemble`, exactly as the daemon wires itself, but with
MemoryKV for etcd and FakeUnitManager for systemd.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import pytest

from fleetd.model.machine import Machine
from fleetd.model.requirements import parse_requirements
from fleetd.model.resources import Resources
from fleetd.model.states import TargetState
from fleetd.model.unit import Unit
from fleetd.model.unitfile import UnitFile
from fleetd.registry.keys import Keys
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
        self.tasks[name].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.tasks[name]
        await self.kv.revoke(self.nodes[name].heart.lease)

    async def shutdown(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)

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
    cluster.tasks[host].cancel()  # fleetd stops; its lease, the unit and its file stay
    with contextlib.suppress(asyncio.CancelledError):
        await cluster.tasks[host]
    calls_before = len(cluster.systemd[host].calls)
    cluster.boot(host)

    async def launched_again() -> bool:
        states = await cluster.registry.list_states("hello.service")
        return [(s.machine, s.state) for s in states] == [
            (cluster.machine_id(host), TargetState.LAUNCHED)]

    await eventually_async(launched_again)
    restarts = [c for c in cluster.systemd[host].calls[calls_before:] if c[0] in ("start", "stop")]
    assert restarts == []  # the running unit was neither restarted nor stopped


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
