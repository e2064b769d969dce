"""One OS process of the cluster benchmark: real fleetd agents over an in-memory systemd.

Each agent is what `fleetd.server.assemble` wires for a host (heart, agent, publisher,
executor; the engine too in a whole fleetd), with its own `EtcdKV` (its own connection and
lease) and its own `FakeUnitManager`. A whole fleetd also serves API v1 on a unix socket.
The process logs as fleetd does (info) into its log file, appends every unit activity change
of its fakes to its history file (`bench.cluster_history`), and counts the agents' alarms in
`Alarms`, memory the parent reads even after a SIGKILL.

Agents start STARTUP_BATCH at a time, each batch once the previous one has registered and
listed: a thousand hosts squeezed onto two cores cannot all boot in the same second without
starving each other of CPU (every call then times out), which real hosts, each with its own
CPUs, never do.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench import cluster_load
from bench.cluster_history import line
from bench.cluster_load import Process
from fleetd import __version__
from fleetd.api.http import make_app, serve
from fleetd.config import FleetConfig
from fleetd.logs import configure
from fleetd.observe import NoRecorder
from fleetd.registry.etcd import EtcdKV
from fleetd.registry.keys import Keys
from fleetd.registry.store import Registry
from fleetd.server import Node, assemble
from fleetd.systemd.base import Activity
from fleetd.systemd.memory import FakeUnitManager

ALARMS = ("relist_catches", "abandoned")
STARTUP_BATCH = 20  # agents started together; the next batch once these run (see bench.cluster)
HOSTS_NICE = 10  # the CPU priority of processes that only simulate hosts (see bench.cluster)


@dataclass
class Alarms:
    """Per process: the agents' alarm counters (a multiprocessing Array, one slot per ALARMS)."""

    counts: Any

    def add(self, name: str, amount: int = 1) -> None:
        self.counts[ALARMS.index(name)] += amount

    def read(self) -> dict[str, int]:
        return dict(zip(ALARMS, list(self.counts), strict=True))


def new_alarms(ctx: Any) -> Alarms:
    return Alarms(ctx.Array(ctypes.c_longlong, len(ALARMS), lock=False))


class AlarmRecorder(NoRecorder):
    """The Recorder the agents get: it counts the two alarms and ignores everything else."""

    def __init__(self, alarms: Alarms) -> None:
        self.alarms = alarms

    def agent_relist_catches(self, keys: int) -> None:
        self.alarms.add("relist_catches", keys)

    def agent_pass_abandoned(self) -> None:
        self.alarms.add("abandoned")


@dataclass(frozen=True)
class Spec:
    """What the parent tells a process: its agents, where etcd is, where to write."""

    process: Process
    endpoints: tuple[str, ...]
    prefix: str
    history: str
    log: str
    socket: str = ""  # a whole fleetd's API socket


def main(spec: Spec, alarms: Alarms, ready: Any) -> None:
    """Process entry: run the agents until killed; `ready` is set once every heart registered."""
    sys.stderr = open(spec.log, "a", buffering=1)  # noqa: SIM115 - the process's own stderr
    if not spec.process.fleetd:
        os.nice(HOSTS_NICE)
    configure(0)
    asyncio.run(_run(spec, alarms, ready))


async def _run(spec: Spec, alarms: Alarms, ready: Any) -> None:
    history = os.open(spec.history, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    nodes = [await _node(spec, index, alarms, history) for index in spec.process.agents]
    if spec.socket:
        await _serve_api(nodes[0], spec.socket)
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        for start in range(0, len(nodes), STARTUP_BATCH):
            batch = nodes[start:start + STARTUP_BATCH]
            for node in batch:
                group.create_task(node.run(stop))
            await asyncio.gather(*(_started(node) for node in batch))
        ready.set()


async def _started(node: Node) -> None:
    """Until the node's heart registered and its agent has listed what it must run."""
    await node.heart.registered.wait()
    await node.agent.assigned.ready.wait()
    await node.agent.globals.ready.wait()


async def _node(spec: Spec, index: int, alarms: Alarms, history: int) -> Node:
    cfg = FleetConfig()
    machine = cluster_load.machine(index)
    turn = index % len(spec.endpoints)  # agents spread over the members as operators would
    endpoints = [*spec.endpoints[turn:], *spec.endpoints[:turn]]
    kv = EtcdKV(endpoints, request_timeout=cfg.etcd_request_timeout)
    systemd = FakeUnitManager()
    await systemd.connect()
    systemd.on_change(_history_writer(history, machine.id))
    return assemble(Registry(kv, Keys(spec.prefix)), systemd, machine, agent_ttl=cfg.agent_ttl,
                    reconcile_interval=cfg.engine_reconcile_interval, run_engine=spec.process.fleetd,
                    policy=cfg.scheduler_policy, fence_grace=cfg.fence_grace,
                    brake=cfg.mass_failure_brake, recorder=AlarmRecorder(alarms))


def _history_writer(fd: int, machine: str) -> Callable[[str, Activity], None]:
    def write(name: str, activity: Activity) -> None:
        os.write(fd, line(time.monotonic(), machine, name, activity.active).encode())
    return write


async def _serve_api(node: Node, socket: str) -> None:
    await serve(make_app(node.heart.registry, __version__), socket)
