"""What the cluster benchmark runs (pure): which agent lives in which process, the machines they
register as, and the units it submits.

Processes: the first `engines` agents are whole fleetds (agent, engine candidate and API) in a
process each; the next agent is alone in its process (the one `lose_one` kills); the rest are
packed `tenth` (a tenth of all agents) to a process, so killing the first packed process loses
a tenth of the cluster at once.

Units, shaped like the examples in units/: instances of a template that reserves CPU and memory
(like batch-worker@), plain units kept off zone a by MachineMetadata (like pinned.service),
instances of a template without [X-Fleet], instances that Conflict with each other (like web@,
at most one per machine), and one Global unit that every agent runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from fleetd.model.machine import Machine
from fleetd.model.resources import Resources

GIB = 1024**3
CAPACITY = Resources(cpu=16_000, memory=64 * GIB)
ZONES = ("a", "b", "c", "d")
GLOBAL = "bench-sidecar.service"
PROBE = "bench-probe-{}.service"  # the units submitted one at a time while a phase is timed
SERVICE = ("[Unit]\nDescription=fleetd cluster benchmark: {}\n\n"
           "[Service]\nType=exec\nExecStart=/bin/sleep infinity\n")
KINDS = {
    "reserved": "bench-reserved@{}.service",  # 40%: CPU=100m Memory=64M
    "pinned": "bench-pinned-{}.service",  # 30%: MachineMetadata=zone!=a
    "plain": "bench-plain@{}.service",  # the rest, less the conflicting ones
    "conflicting": "bench-web@{}.service",  # Conflicts=bench-web@*.service, one per machine at most
}
FLEET = {
    "reserved": "CPU=100m\nMemory=64M\n",
    "pinned": "MachineMetadata=zone!=a\n",
    "plain": "",
    "conflicting": "Conflicts=bench-web@*.service\n",
}


@dataclass(frozen=True, slots=True)
class Process:
    """One OS process of the benchmark: the agents it runs; `fleetd` if it is a whole fleetd."""

    name: str
    agents: tuple[int, ...]
    fleetd: bool = False


def layout(agents: int, engines: int) -> list[Process]:
    """The processes for `agents` agents, `engines` of them whole fleetds (see the module doc)."""
    if engines < 2:
        raise ValueError("at least 2 engines: one is killed while another must take over")
    if agents < engines + 2:
        raise ValueError(f"at least {engines + 2} agents for {engines} engines")
    tenth = max(1, agents // 10)
    processes = [Process(f"fleetd{i + 1}", (i,), fleetd=True) for i in range(engines)]
    processes.append(Process("lone", (engines,)))
    packed = range(engines + 1, agents)
    for number, start in enumerate(range(0, len(packed), tenth)):
        processes.append(Process(f"pack{number + 1}", tuple(packed[start:start + tenth])))
    return processes


def machine_id(index: int) -> str:
    return hashlib.md5(f"bench-cluster-agent-{index}".encode()).hexdigest()


def machine(index: int) -> Machine:
    """Agent `index`'s machine: a zone in turn, a rack, 16 CPUs and 64 GiB."""
    return Machine(id=machine_id(index), ip=f"10.{index // 65536 % 256}.{index // 256 % 256}.{index % 256}",
                   metadata={"zone": ZONES[index % len(ZONES)], "rack": f"k{index % 40}"},
                   capacity=CAPACITY)


def unit_counts(units: int, agents: int) -> dict[str, int]:
    """How many units of each kind make up `units` (conflicting: at most half the agents)."""
    reserved, pinned = units * 4 // 10, units * 3 // 10
    conflicting = min(agents // 2, units - reserved - pinned)
    return {"reserved": reserved, "pinned": pinned,
            "plain": units - reserved - pinned - conflicting, "conflicting": conflicting}


def unit_text(kind: str) -> str:
    fleet = FLEET[kind]
    return SERVICE.format(kind) + (f"\n[X-Fleet]\n{fleet}" if fleet else "")


def global_text() -> str:
    return SERVICE.format("global sidecar") + "\n[X-Fleet]\nGlobal=true\n"


def probe_text() -> str:
    return SERVICE.format("probe")


def units(total: int, agents: int) -> Iterator[tuple[str, str]]:
    """(name, text) of the `total` ordinary units, the kinds interleaved as an operator's
    submissions would be."""
    counts = unit_counts(total, agents)
    texts = {kind: unit_text(kind) for kind in counts}
    made = dict.fromkeys(counts, 0)
    while any(made[kind] < counts[kind] for kind in counts):
        for kind in counts:
            if made[kind] < counts[kind]:
                made[kind] += 1
                yield KINDS[kind].format(made[kind]), texts[kind]
