"""SIGHUP reload: what a changed fleet.conf does to a running fleetd (three in-memory nodes)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from test_loops import HELLO, Cluster, eventually, eventually_async

from fleetd.config import FleetConfig, load_config, reload_changes
from fleetd.errors import ConfigError
from fleetd.model.states import TargetState
from fleetd.registry import codec
from fleetd.reload import Reloader


@pytest.mark.parametrize("change, applied, restart", [
    ({"metadata": {"role": "db"}}, ["metadata"], []),
    ({"capacity_cpu": 4.0, "verbosity": 1}, ["verbosity", "capacity_cpu"], []),
    ({"etcd_servers": ["http://10.0.0.9:2379"], "api_listen": ":4001"}, [],
     ["etcd_servers", "api_listen"]),
    ({"metadata": {"a": "1"}, "agent_ttl": 9.0}, ["metadata"], ["agent_ttl"]),
    ({}, [], []),
])
def test_reload_changes(change: dict, applied: list[str], restart: list[str]) -> None:
    running = FleetConfig(metadata={"role": "web"})
    merged, done, later = reload_changes(running, running.model_copy(update=change))
    assert (sorted(done), sorted(later)) == (sorted(applied), sorted(restart))
    assert all(getattr(merged, k) == change[k] for k in applied)
    assert all(getattr(merged, k) == getattr(running, k) for k in restart)


@pytest.fixture
async def cluster():
    c = Cluster(["a", "b", "c"])
    await eventually(lambda: all(n.heart.lease for n in c.nodes.values()))
    yield c
    await c.shutdown()


def reloader(cluster: Cluster, name: str, cfg: FleetConfig, loaded: list) -> Reloader:
    """A reloader for node `name` whose file reads as `loaded[0]` (or raises it)."""
    def load() -> tuple[FleetConfig, list[str]]:
        if isinstance(loaded[0], Exception):
            raise loaded[0]
        return loaded[0], []

    overlay = cluster.nodes[name].overlay
    assert overlay is not None
    return Reloader(cfg, overlay, loader=load)


async def published(cluster: Cluster, name: str):
    found = await cluster.registry.kv.get(cluster.registry.keys.machine(cluster.machine_id(name)))
    return codec.decode_machine(found.value)


async def test_new_metadata_moves_units_whose_constraint_no_longer_holds(cluster: Cluster) -> None:
    await cluster.submit("web.service", HELLO + "[X-Fleet]\nMachineMetadata=host=a\n", TargetState.LAUNCHED)
    await cluster.submit("any.service", HELLO, TargetState.LAUNCHED)
    await eventually(lambda: cluster.running("web.service") == ["a"] and cluster.running("any.service"))
    home = cluster.running("any.service")
    running = FleetConfig(metadata={"host": "a"})
    loaded = [running.model_copy(update={"metadata": {"host": "z"}, "capacity_cpu": 3.0})]
    assert await reloader(cluster, "a", running, loaded).reload() == ["metadata", "capacity_cpu"]
    machine = await published(cluster, "a")
    assert dict(machine.metadata) == {"host": "z"} and machine.capacity.cpu == 3000
    await eventually(lambda: cluster.running("web.service") == [])  # nowhere matches host=a now
    assert cluster.running("any.service") == home  # the host's other units kept running
    assert ("stop", "any.service") not in cluster.systemd[home[0]].calls


async def test_an_invalid_file_or_a_restart_only_change_keeps_the_running_config(
        cluster: Cluster) -> None:
    running = FleetConfig(metadata={"host": "a"})
    loaded: list = [ConfigError("invalid value for agent_ttl: not a duration")]
    r = reloader(cluster, "a", running, loaded)
    assert await r.reload() == [] and r.running is running
    loaded[0] = running.model_copy(update={"etcd_servers": ["http://10.9.9.9:2379"]})
    assert await r.reload() == [] and r.running.etcd_servers == running.etcd_servers
    assert dict((await published(cluster, "a")).metadata) == {"host": "a"}


async def test_a_signal_asks_for_a_reload_of_the_real_file(cluster: Cluster, tmp_path: Path) -> None:
    conf = tmp_path / "fleet.conf"
    conf.write_text("metadata=host=a\n")
    running, _ = load_config(str(conf), environ={})
    overlay = cluster.nodes["a"].overlay
    assert overlay is not None
    r = Reloader(running, overlay, loader=lambda: load_config(str(conf), environ={}))
    conf.write_text("metadata=host=a,disk=ssd\nverbosity=1\n")
    r.request()
    task = asyncio.create_task(r.run())

    async def reloaded() -> bool:
        return dict((await published(cluster, "a")).metadata) == {"host": "a", "disk": "ssd"}

    try:
        await eventually_async(reloaded)
        assert r.running.verbosity == 1
    finally:
        task.cancel()
