"""Tier 2: an agent that cannot renew its lease stops its AtMostOnce units, and only those.

One fleetd without an engine over the in-memory registry and a fake systemd, with a 2 s lease:
it fences itself 1 s after its last successful keep-alive. An etcd outage (MemoryKV.fail)
stands for a network cut.
"""

from __future__ import annotations

import asyncio

import pytest
from test_loops import Solo, cancel, eventually

from fleetd.model.states import TargetState
from fleetd.model.unit import Assignment
from fleetd.model.unitfile import UnitFile
from fleetd.registry.kv import Op, Put
from fleetd.server import assemble

PLAIN = "[Service]\nExecStart=/bin/sleep 1000\n"
FENCED = PLAIN + "[X-Fleet]\nAtMostOnce=true\n"


class Fencing(Solo):
    def __init__(self) -> None:
        super().__init__()
        self.node = assemble(self.registry, self.systemd, self.machine, agent_ttl=2,
                             reconcile_interval=1, run_engine=False)

    async def place(self, name: str, text: str) -> None:
        unit_file = UnitFile.parse(text)
        ops: list[Op] = [Put(self.registry.keys.file(unit_file.hash), unit_file.serialize()),
                         self.registry.place_op(Assignment(name, self.machine.id, unit_file.hash,
                                                           TargetState.LAUNCHED))]
        await self.kv.txn((), ops)


@pytest.fixture
async def host():
    h = Fencing()
    await h.start()
    yield h
    assert h.task is not None
    h.kv.fail(False)
    await cancel(h.task)


async def test_a_cut_host_stops_at_most_once_units_and_keeps_the_rest(host: Fencing) -> None:
    await host.place("plain.service", PLAIN)
    await host.place("fenced.service", FENCED)
    await eventually(lambda: host.running() == {"plain.service", "fenced.service"})
    host.kv.fail(True)  # etcd unreachable: no keep-alive succeeds from now on
    await eventually(lambda: host.node.heart.fenced, timeout=3)
    await eventually(lambda: host.running() == {"plain.service"})
    assert "fenced.service" in host.systemd.files  # stopped, not unloaded
    await asyncio.sleep(0.5)
    assert host.running() == {"plain.service"}  # and it stays down while fenced


async def test_after_a_short_cut_the_lease_lives_and_the_unit_runs_again(host: Fencing) -> None:
    await host.place("fenced.service", FENCED)
    await eventually(lambda: host.running() == {"fenced.service"})
    host.kv.fail(True)
    await eventually(lambda: not host.running(), timeout=3)
    listings = host.kv.listed.count(host.registry.keys.assigned_to(host.machine.id))
    host.kv.fail(False)  # back before the 2 s lease expired: nothing was moved
    await eventually(lambda: host.running() == {"fenced.service"}, timeout=4)
    assert not host.node.heart.fenced
    assert host.kv.listed.count(host.registry.keys.assigned_to(host.machine.id)) > listings


async def test_after_the_lease_expired_the_unit_waits_for_the_engine(host: Fencing) -> None:
    await host.place("fenced.service", FENCED)
    await eventually(lambda: host.running() == {"fenced.service"})
    host.kv.fail(True)
    await asyncio.sleep(2.2)
    host.kv.expire()  # the lease is gone: etcd deleted the machine key
    host.kv.fail(False)
    await eventually(lambda: host.node.heart.lapsed_at is not None, timeout=3)
    await asyncio.sleep(0.5)
    assert not host.running()  # re-registered, but the engine may still be moving it
    timing = host.node.heart.timing
    await eventually(lambda: host.running() == {"fenced.service"}, timeout=timing.rejoin_after + 2)
